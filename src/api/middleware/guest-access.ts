// What a guest account may call (client-server-api "Guest Access", "Client behaviour"). Checked once,
// where an access token is resolved (auth.ts), so that no endpoint needs a guest check of its own:
// every route not listed here answers a guest 403 M_GUEST_ACCESS_FORBIDDEN.
//
// The spec's list, plus what Synapse also lets guests call and guest clients use at start-up or to
// take part in a room they joined: /publicRooms, alias look-ups, room summaries, filters, typing, receipts and read markers,
// presence, /joined_rooms, /keys/changes, /capabilities and /voip/turnServer. (The spec's
// list is of what servers must allow; it does not forbid more.)
import { MatrixError } from "../../protocol/errors";

type Rule = readonly [method: string, path: RegExp];

const SEGMENT = "[^/]+";
const room = (rest: string) => new RegExp(`^/rooms/${SEGMENT}/${rest}$`);

const GUEST_ROUTES: readonly Rule[] = [
  // Reading a room, and room previews.
  ["GET", room("state")],
  ["GET", room(`state/${SEGMENT}`)],
  ["GET", room(`state/${SEGMENT}/${SEGMENT}`)],
  ["GET", room(`context/${SEGMENT}`)],
  ["GET", room(`event/${SEGMENT}`)],
  ["GET", room("messages")],
  ["GET", room("members")],
  ["GET", room("initialSync")],
  ["GET", /^\/sync$/],
  ["GET", /^\/events$/],
  ["GET", new RegExp(`^/media/(?:download|thumbnail)/${SEGMENT}/${SEGMENT}(?:/${SEGMENT})?$`)],
  // The same under the older /_matrix/media prefix.
  ["GET", new RegExp(`^/(?:download|thumbnail)/${SEGMENT}/${SEGMENT}(?:/${SEGMENT})?$`)],
  // Taking part.
  ["POST", room("join")],
  ["POST", new RegExp(`^/join/${SEGMENT}$`)],
  ["POST", room("leave")],
  ["PUT", room(`send/${SEGMENT}/${SEGMENT}`)],
  ["PUT", room(`state/${SEGMENT}`)],
  ["PUT", room(`state/${SEGMENT}/${SEGMENT}`)],
  ["PUT", new RegExp(`^/sendToDevice/${SEGMENT}/${SEGMENT}$`)],
  // Account maintenance: the display name only, of the profile.
  ["PUT", new RegExp(`^/profile/${SEGMENT}/displayname$`)],
  ["DELETE", new RegExp(`^/profile/${SEGMENT}/displayname$`)],
  ["GET", /^\/devices$/],
  ["GET", new RegExp(`^/devices/${SEGMENT}$`)],
  ["PUT", new RegExp(`^/devices/${SEGMENT}$`)],
  ["GET", /^\/account\/whoami$/],
  // End-to-end encryption.
  ["POST", /^\/keys\/(?:upload|query|claim)$/],
  // Beyond the spec's list, as Synapse.
  ["GET", /^\/keys\/changes$/],
  ["GET", new RegExp(`^/directory/room/${SEGMENT}$`)],
  ["GET", new RegExp(`^/room_summary/${SEGMENT}$`)],
  ["GET", /^\/publicRooms$/],
  ["POST", /^\/publicRooms$/],
  ["POST", new RegExp(`^/user/${SEGMENT}/filter$`)],
  ["GET", new RegExp(`^/user/${SEGMENT}/filter/${SEGMENT}$`)],
  ["PUT", room(`typing/${SEGMENT}`)],
  ["POST", room(`receipt/${SEGMENT}/${SEGMENT}`)],
  ["POST", room("read_markers")],
  ["GET", new RegExp(`^/presence/${SEGMENT}/status$`)],
  ["PUT", new RegExp(`^/presence/${SEGMENT}/status$`)],
  ["GET", /^\/joined_rooms$/],
  ["GET", /^\/capabilities$/],
  ["GET", /^\/voip\/turnServer$/],
];

/** The client-server prefixes a route may come under (paths.ts, and the media API's own). */
const PREFIX = /^\/_matrix\/(?:client\/(?:v3|r0|v1|unstable)|media\/(?:v3|r0|v1))(?=\/)/;

/**
 * Refused even though a rule above matches: a member event through PUT /state would join (or invite)
 * past the guest check of joins, which only /join makes.
 */
const GUEST_REFUSED: readonly Rule[] = [["PUT", room("state/m\\.room\\.member(?:/.*)?")]];

/** The path with each segment percent-decoded (so "m%2Eroom%2Emember" reads as what the route sees), a decoded "/" kept escaped. */
function decodedPath(path: string): string {
  return path
    .split("/")
    .map((segment) => {
      try {
        return decodeURIComponent(segment).replaceAll("/", "%2F");
      } catch {
        return segment;
      }
    })
    .join("/");
}

/** Whether a guest may make this request. */
export function guestMayCall(method: string, pathname: string): boolean {
  const prefix = PREFIX.exec(pathname);
  if (!prefix) return false;
  const path = decodedPath(pathname.slice(prefix[0].length).replace(/\/$/, ""));
  // HEAD is answered as GET.
  const verb = method === "HEAD" ? "GET" : method;
  const matches = ([m, pattern]: Rule) => m === verb && pattern.test(path);
  return GUEST_ROUTES.some(matches) && !GUEST_REFUSED.some(matches);
}

/** 403 M_GUEST_ACCESS_FORBIDDEN unless a guest may make this request. */
export function requireGuestMayCall(request: Request): void {
  if (!guestMayCall(request.method, new URL(request.url).pathname)) {
    throw new MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guest access not allowed", 403);
  }
}
