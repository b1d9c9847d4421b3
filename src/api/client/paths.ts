// Client-server endpoints are served under /_matrix/client/v3 and, for older clients (matrix-nio,
// sytest), under the r0 prefix with the same behaviour.
export const CLIENT_PREFIXES = ["/_matrix/client/v3", "/_matrix/client/r0"] as const;

export const clientPaths = (path: string): string[] => CLIENT_PREFIXES.map((prefix) => `${prefix}${path}`);
