// The operation a user-interactive auth session is bound to: the request's method and path (the
// query is left out: it carries the deprecated access_token).
export const uiaOperation = (request: Request): string => `${request.method} ${new URL(request.url).pathname}`;
