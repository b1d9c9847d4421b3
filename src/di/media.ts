// The media part of the composition root: the content repository's files under data_dir/media, the
// thumbnail worker, the remote media client (when federation is on) and the URL previewer (when
// previews are on), put together into one MediaService under its own token.
import { join } from "node:path";
import type { DependencyContainer } from "tsyringe";
import { MediaFiles } from "../services/media/media-files";
import { MediaService } from "../services/media/media-service";
import { FederationMediaClient, noRemoteMedia } from "../services/media/remote-media";
import { parseAddressRange } from "../protocol/ip-ranges";
import { publicOrAllowed, safeFetch } from "../services/media/safe-fetch";
import { WorkerThumbnailer } from "../services/media/thumbnailer";
import { UrlPreviewer } from "../services/media/url-preview";
import type { Service } from "../services/runtime";
import { PORTIER_VERSION } from "../version";
import { registerFactory, type CoreParts } from "./composition";
import { Tokens, resolve, token } from "./tokens";

export const MediaTokens = {
  Media: token<MediaService>("Media"),
  /** Stops the thumbnail worker. */
  MediaLifecycle: token<Service>("MediaLifecycle"),
} as const;

export function registerMediaServices(container: DependencyContainer, { config, clock, logger, stores }: Omit<CoreParts, "signingKey">): void {
  const userAgent = `Portier/${PORTIER_VERSION}`;
  let thumbnailer: WorkerThumbnailer | undefined;
  registerFactory(container, MediaTokens.Media, () => {
    thumbnailer = new WorkerThumbnailer(logger);
    const remote = config.federation.enabled
      ? new FederationMediaClient({ serverName: config.server_name, signer: resolve(container, Tokens.ServerKeys), config: config.federation, clock, userAgent })
      : noRemoteMedia;
    const allowAddress = publicOrAllowed(config.media.url_preview_ip_range_whitelist.map((range) => parseAddressRange(range)!));
    const fetchLimits = { maxBytes: config.media.url_preview_max_bytes, timeoutMs: config.media.url_preview_timeout_ms, userAgent, allowAddress, verifyTls: config.media.url_preview_verify_tls };
    let media: MediaService | undefined = undefined;
    const previewer = config.media.url_preview_enabled
      ? new UrlPreviewer({
          fetch: (url) => safeFetch(url, fetchLimits),
          storeImage: (bytes, contentType, userId) => media!.storeFetched(bytes, contentType, userId),
          clock,
        })
      : undefined;
    media = new MediaService(
      { store: stores.media, files: new MediaFiles(join(config.data_dir, "media")), thumbnailer, remote, previewer, clock, logger },
      {
        serverName: config.server_name,
        maxUploadSize: config.media.max_upload_size,
        maxImagePixels: config.media.max_image_pixels,
        maxPendingUploads: config.media.max_pending_uploads,
        unusedExpirationMs: config.media.unused_expiration_ms,
      },
    );
    return media;
  });
  registerFactory(container, MediaTokens.MediaLifecycle, () => ({ name: "media", stop: () => thumbnailer?.stop() }));
}
