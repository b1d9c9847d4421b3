// The content repository for clients (client-server-api "Content repository"):
//   authenticated (v1.11): GET /_matrix/client/v1/media/{config, download, thumbnail, preview_url};
//   uploads: POST /_matrix/media/v3/upload, POST /_matrix/media/v1/create and
//     PUT /_matrix/media/v3/upload/{serverName}/{mediaId} (bodies are raw bytes: see RAW_BODY);
//   deprecated, for older clients: GET /_matrix/media/v3/{config, download, thumbnail, preview_url}
//     (r0 too). Download and thumbnail take no token there; media.freeze_unauthenticated makes them
//     answer 404 M_NOT_FOUND for all media. The spec's freeze keeps media uploaded before the freeze
//     reachable; Portier's switch is simpler: on, nothing is served without a token.
//     Even unfrozen they never fetch another server's media, whatever allow_remote says: they serve
//     only a copy already cached, so an anonymous client cannot make this server download and store
//     whatever it names. Synapse with authenticated media on does not fetch for them either (it also
//     hides copies cached for authenticated requests, which the spec's freeze counts as new media).
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { MediaService } from "../../services/media/media-service";
import { requireUser } from "../middleware/auth";
import { allowRemoteOf, declaredLength, serveContent, thumbnailParams, timeoutOf } from "./serving";

export interface ClientMediaRouteDeps {
  accounts: AccountService;
  media: MediaService;
  /** media.freeze_unauthenticated */
  freezeUnauthenticated: boolean;
}

const AUTHED = "/_matrix/client/v1/media";
const LEGACY = ["/_matrix/media/v3", "/_matrix/media/r0"] as const;

type Query = Record<string, string | undefined>;

export function clientMediaRoutes({ accounts, media, freezeUnauthenticated }: ClientMediaRouteDeps) {
  const app = new Elysia({ name: "client-media" });

  // allow_remote (checked even where it changes nothing) can refuse a fetch, never allow one without a token.
  const download = async (request: Request, params: { serverName: string; mediaId: string; fileName?: string }, query: Query, authenticated: boolean) => {
    const content = await media.download(params.serverName, params.mediaId, { allowRemote: allowRemoteOf(query) && authenticated, timeoutMs: timeoutOf(query) });
    return serveContent(request, content, { filename: params.fileName, authenticated });
  };
  const thumbnail = async (request: Request, params: { serverName: string; mediaId: string }, query: Query, authenticated: boolean) => {
    const content = await media.thumbnail(params.serverName, params.mediaId, { ...thumbnailParams(query), allowRemote: allowRemoteOf(query) && authenticated, timeoutMs: timeoutOf(query) });
    return serveContent(request, content, { thumbnail: true, authenticated });
  };
  const preview = async (request: Request, query: Query) => {
    const user = await requireUser(accounts, request);
    if (query.url === undefined || query.url === "") throw new MatrixError("M_MISSING_PARAM", "Missing parameter: url");
    return media.previewUrl(query.url, user.userId);
  };
  const frozen = () => {
    if (freezeUnauthenticated) throw new MatrixError("M_NOT_FOUND", "Unauthenticated media access is frozen: use /_matrix/client/v1/media");
  };

  // GET /_matrix/client/v1/media/config
  app.get(`${AUTHED}/config`, async ({ request }) => {
    await requireUser(accounts, request);
    return media.config();
  });
  // GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]
  app.get(`${AUTHED}/download/:serverName/:mediaId`, async ({ request, params, query }) => {
    await requireUser(accounts, request);
    return download(request, params, query, true);
  });
  app.get(`${AUTHED}/download/:serverName/:mediaId/:fileName`, async ({ request, params, query }) => {
    await requireUser(accounts, request);
    return download(request, params, query, true);
  });
  // GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}
  app.get(`${AUTHED}/thumbnail/:serverName/:mediaId`, async ({ request, params, query }) => {
    await requireUser(accounts, request);
    return thumbnail(request, params, query, true);
  });
  // GET /_matrix/client/v1/media/preview_url
  app.get(`${AUTHED}/preview_url`, ({ request, query }) => preview(request, query));

  // POST /_matrix/media/v3/upload
  const upload = async ({ request, query }: { request: Request; query: Query }) => {
    const user = await requireUser(accounts, request);
    const contentUri = await media.upload(user.userId, { body: request.body, declaredLength: declaredLength(request), contentType: request.headers.get("content-type") ?? undefined, filename: query.filename });
    return { content_uri: contentUri };
  };
  // PUT /_matrix/media/v3/upload/{serverName}/{mediaId}
  const uploadTo = async ({ request, params, query }: { request: Request; params: { serverName: string; mediaId: string }; query: Query }) => {
    const user = await requireUser(accounts, request);
    await media.uploadTo(user.userId, params.serverName, params.mediaId, { body: request.body, declaredLength: declaredLength(request), contentType: request.headers.get("content-type") ?? undefined, filename: query.filename });
    return {};
  };
  // POST /_matrix/media/v1/create
  app.post("/_matrix/media/v1/create", async ({ request }) => {
    const user = await requireUser(accounts, request);
    return media.create(user.userId);
  });

  for (const prefix of LEGACY) {
    app.post(`${prefix}/upload`, upload);
    app.put(`${prefix}/upload/:serverName/:mediaId`, uploadTo);
    app.get(`${prefix}/config`, async ({ request }) => {
      await requireUser(accounts, request);
      return media.config();
    });
    app.get(`${prefix}/download/:serverName/:mediaId`, async ({ request, params, query }) => {
      frozen();
      return download(request, params, query, false);
    });
    app.get(`${prefix}/download/:serverName/:mediaId/:fileName`, async ({ request, params, query }) => {
      frozen();
      return download(request, params, query, false);
    });
    app.get(`${prefix}/thumbnail/:serverName/:mediaId`, async ({ request, params, query }) => {
      frozen();
      return thumbnail(request, params, query, false);
    });
    app.get(`${prefix}/preview_url`, ({ request, query }) => preview(request, query));
  }
  return app;
}
