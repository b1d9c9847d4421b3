// A room ID in a path: the one check every API shares before it looks the room up.
import { MatrixError } from "../protocol/errors";

/** 400 M_INVALID_PARAM unless it looks like a room ID ("!..."). */
export function roomIdParam(roomId: string): string {
  if (!roomId.startsWith("!")) throw new MatrixError("M_INVALID_PARAM", `Invalid room ID: ${roomId}`);
  return roomId;
}
