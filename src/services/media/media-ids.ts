// mxc:// URIs (client-server-api "Matrix Content (mxc://) URIs"): the server name must be a valid
// server name and the media id only A-Za-z0-9, `_` and `-`. Checked before anything touches storage,
// the file system or the network, as the spec's security considerations ask (no traversal tricks).
import { randomBytes } from "node:crypto";
import { MatrixError } from "../../protocol/errors";
import { isValidServerName } from "../../protocol/identifiers";

const MEDIA_ID = /^[A-Za-z0-9_-]{1,255}$/;

export function isValidMediaId(mediaId: string): boolean {
  return MEDIA_ID.test(mediaId);
}

/** 404 M_NOT_FOUND for a server name or media id no content can have (as for unknown media). */
export function checkMediaAddress(serverName: string, mediaId: string): void {
  if (!isValidServerName(serverName) || !isValidMediaId(mediaId)) throw new MatrixError("M_NOT_FOUND", "Media not found");
}

/** 24 random letters and digits, like Synapse's ids: unguessable (knowing the URI is enough to download). */
export function newMediaId(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const bytes = randomBytes(24);
  let id = "";
  // 52 letters: bytes below 208 (4 x 52) keep the distribution even; the rare rest is redrawn.
  for (let i = 0; id.length < 24; i++) {
    const byte = i < bytes.length ? bytes[i]! : randomBytes(1)[0]!;
    if (byte < 208) id += alphabet[byte % 52];
  }
  return id;
}

export const mxcUri = (serverName: string, mediaId: string) => `mxc://${serverName}/${mediaId}`;
