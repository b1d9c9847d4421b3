// Our media for other servers (server-server-api "Content Repository"): GET
// /_matrix/federation/v1/media/download/{mediaId} and /thumbnail/{mediaId}, X-Matrix authenticated,
// answered multipart/mixed: an empty JSON metadata part, then the bytes with their Content-Type and
// Content-Disposition. Only this server's own media is served: a server never proxies a third's.
import { Elysia } from "elysia";
import type { MediaService } from "../../services/media/media-service";
import { multipartMedia } from "../../services/media/multipart";
import type { FederationAuthenticator } from "../middleware/x-matrix";
import { CORS_HEADERS } from "../middleware/http";
import { mediaHeaders, thumbnailParams, timeoutOf } from "./serving";

export interface FederationMediaRouteDeps {
  authenticate: FederationAuthenticator;
  media: MediaService;
  serverName: string;
}

const V1 = "/_matrix/federation/v1/media";

export function federationMediaRoutes({ authenticate, media, serverName }: FederationMediaRouteDeps) {
  const answer = async (content: Awaited<ReturnType<MediaService["download"]>>, thumbnail: boolean) => {
    const headers = mediaHeaders(content, { thumbnail, authenticated: true });
    // Read whole (at most media.max_upload_size): a file inside a Blob of parts would not be read.
    const bytes = new Uint8Array(await content.body.arrayBuffer());
    const { body, contentType } = multipartMedia({ contentType: headers["Content-Type"]!, contentDisposition: headers["Content-Disposition"]!, body: bytes });
    return new Response(body, { status: 200, headers: { ...CORS_HEADERS, "Content-Type": contentType } });
  };
  return new Elysia({ name: "federation-media" })
    .get(`${V1}/download/:mediaId`, async ({ request, params, query }) => {
      await authenticate(request, undefined);
      return answer(await media.download(serverName, params.mediaId, { allowRemote: false, timeoutMs: timeoutOf(query) }), false);
    })
    .get(`${V1}/thumbnail/:mediaId`, async ({ request, params, query }) => {
      await authenticate(request, undefined);
      return answer(await media.thumbnail(serverName, params.mediaId, { ...thumbnailParams(query), allowRemote: false, timeoutMs: timeoutOf(query) }), true);
    });
}
