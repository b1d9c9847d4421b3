// Matrix errors (content/client-server-api/_index.md, "Standard error response").
// Thrown anywhere below the HTTP layer; one error mapper turns them into {errcode, error} JSON.

export type ErrCode =
  | "M_FORBIDDEN"
  | "M_UNKNOWN_TOKEN"
  | "M_MISSING_TOKEN"
  | "M_USER_LOCKED"
  | "M_USER_SUSPENDED"
  | "M_BAD_JSON"
  | "M_NOT_JSON"
  | "M_NOT_FOUND"
  | "M_LIMIT_EXCEEDED"
  | "M_UNRECOGNIZED"
  | "M_UNKNOWN"
  | "M_UNAUTHORIZED"
  | "M_USER_DEACTIVATED"
  | "M_USER_IN_USE"
  | "M_INVALID_USERNAME"
  | "M_ROOM_IN_USE"
  | "M_BAD_ALIAS"
  | "M_INVALID_ROOM_STATE"
  | "M_THREEPID_IN_USE"
  | "M_THREEPID_NOT_FOUND"
  | "M_THREEPID_MEDIUM_NOT_SUPPORTED"
  | "M_THREEPID_AUTH_FAILED"
  | "M_SERVER_NOT_TRUSTED"
  | "M_UNSUPPORTED_ROOM_VERSION"
  | "M_INCOMPATIBLE_ROOM_VERSION"
  | "M_BAD_STATE"
  | "M_GUEST_ACCESS_FORBIDDEN"
  | "M_CAPTCHA_NEEDED"
  | "M_CAPTCHA_INVALID"
  | "M_MISSING_PARAM"
  | "M_INVALID_PARAM"
  | "M_TOO_LARGE"
  | "M_EXCLUSIVE"
  // An application service names a device its user does not have (application-service-api "Identity assertion").
  | "M_UNKNOWN_DEVICE"
  // Simplified sliding sync (MSC4186): a `pos` the server no longer holds (400).
  | "M_UNKNOWN_POS"
  | "M_RESOURCE_LIMIT_EXCEEDED"
  | "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM"
  | "M_WEAK_PASSWORD"
  | "M_UNABLE_TO_AUTHORISE_JOIN"
  | "M_UNABLE_TO_GRANT_JOIN"
  | "M_NOT_YET_UPLOADED"
  | "M_CANNOT_OVERWRITE_MEDIA"
  | "M_PROFILE_TOO_LARGE"
  | "M_KEY_TOO_LARGE"
  | "M_INVALID_SIGNATURE"
  | "M_WRONG_ROOM_KEYS_VERSION";

/** The HTTP status each errcode takes unless a caller says otherwise. */
const DEFAULT_STATUS: Partial<Record<ErrCode, number>> = {
  M_FORBIDDEN: 403,
  M_UNKNOWN_TOKEN: 401,
  M_MISSING_TOKEN: 401,
  M_UNAUTHORIZED: 401,
  M_USER_LOCKED: 401,
  M_USER_SUSPENDED: 403,
  M_BAD_JSON: 400,
  M_NOT_JSON: 400,
  M_NOT_FOUND: 404,
  M_LIMIT_EXCEEDED: 429,
  M_UNRECOGNIZED: 404,
  M_UNKNOWN: 400,
  M_USER_DEACTIVATED: 403,
  M_USER_IN_USE: 400,
  M_INVALID_USERNAME: 400,
  M_ROOM_IN_USE: 400,
  M_INVALID_ROOM_STATE: 400,
  M_UNSUPPORTED_ROOM_VERSION: 400,
  M_INCOMPATIBLE_ROOM_VERSION: 400,
  M_GUEST_ACCESS_FORBIDDEN: 403,
  M_MISSING_PARAM: 400,
  M_INVALID_PARAM: 400,
  M_TOO_LARGE: 413,
  M_EXCLUSIVE: 400,
  M_UNKNOWN_POS: 400,
  M_WEAK_PASSWORD: 400,
  M_NOT_YET_UPLOADED: 504,
  M_WRONG_ROOM_KEYS_VERSION: 403,
};

export class MatrixError extends Error {
  readonly errcode: ErrCode;
  readonly status: number;
  /** Extra fields merged into the response body (e.g. retry_after_ms, soft_logout, room_version). */
  readonly extra: Readonly<Record<string, unknown>>;

  constructor(errcode: ErrCode, message: string, status?: number, extra: Record<string, unknown> = {}) {
    super(message);
    this.name = "MatrixError";
    this.errcode = errcode;
    this.status = status ?? DEFAULT_STATUS[errcode] ?? 400;
    this.extra = extra;
  }

  toJSON(): Record<string, unknown> {
    return { ...this.extra, errcode: this.errcode, error: this.message };
  }
}

export const forbidden = (message: string) => new MatrixError("M_FORBIDDEN", message);
export const notFound = (message: string) => new MatrixError("M_NOT_FOUND", message);
export const badJson = (message: string) => new MatrixError("M_BAD_JSON", message);
export const missingParam = (message: string) => new MatrixError("M_MISSING_PARAM", message);
export const invalidParam = (message: string) => new MatrixError("M_INVALID_PARAM", message);
export const limitExceeded = (retryAfterMs: number) =>
  new MatrixError("M_LIMIT_EXCEEDED", "Too many requests", 429, { retry_after_ms: retryAfterMs });
