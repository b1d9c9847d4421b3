// Counts and times every HTTP request by method, route template and status, around the app's own
// handling (so requests answered before routing, 404s and errors count too, with their real status).
// The route is found in a tree of the app's route templates: a label is always a template such as
// /_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId, never a path with ids in it.
import type { MetricsRegistry, RequestSeries } from "../../services/metrics/metrics";

/** Requests no route matches (unknown paths, CORS preflights answered early) share one label. */
export const UNMATCHED_ROUTE = "unmatched";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]);

interface RouteNode {
  readonly literal: Map<string, RouteNode>;
  param: RouteNode | undefined;
  /** A `*` here: matches the rest of the path, whatever it is. */
  wildcard: string | undefined;
  /** The template of a route ending here. */
  template: string | undefined;
  /** Series by method, made on first use. */
  readonly series: Map<string, RequestSeries>;
}

const node = (): RouteNode => ({ literal: new Map(), param: undefined, wildcard: undefined, template: undefined, series: new Map() });

/** The route templates of an app, matched segment by segment (a literal segment before a parameter). */
export class RouteTemplates {
  private readonly root = node();
  private readonly wildcards = new Map<string, RouteNode>();
  readonly unmatched = node();

  constructor(paths: Iterable<string>) {
    for (const path of paths) this.add(path);
    this.unmatched.template = UNMATCHED_ROUTE;
  }

  private add(path: string): void {
    let at = this.root;
    for (const part of path.split("/").slice(1)) {
      if (part === "*") {
        at.wildcard = path;
        return;
      }
      if (part.startsWith(":")) at = at.param ??= node();
      else {
        let next = at.literal.get(part);
        if (!next) at.literal.set(part, (next = node()));
        at = next;
      }
    }
    at.template ??= path;
  }

  /** The node of the route template a path matches (the unmatched node when none does). */
  match(pathname: string): RouteNode {
    const parts = pathname.split("/");
    const found = this.walk(this.root, parts, 1);
    return found ?? this.unmatched;
  }

  private walk(at: RouteNode, parts: string[], i: number): RouteNode | undefined {
    if (i === parts.length) return at.template !== undefined ? at : this.wildcardNode(at.wildcard);
    const part = parts[i]!;
    const literal = at.literal.get(part);
    const viaLiteral = literal && this.walk(literal, parts, i + 1);
    if (viaLiteral) return viaLiteral;
    const viaParam = at.param && part !== "" ? this.walk(at.param, parts, i + 1) : undefined;
    return viaParam ?? this.wildcardNode(at.wildcard);
  }

  /** A wildcard route's own node (its series), shared by every path under it. */
  private wildcardNode(template: string | undefined): RouteNode | undefined {
    if (template === undefined) return undefined;
    let n = this.wildcards.get(template);
    if (!n) {
      n = node();
      n.template = template;
      this.wildcards.set(template, n);
    }
    return n;
  }
}

/** The path of a request URL without parsing it into a URL object. */
function pathnameOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start === -1) return "/";
  let end = url.length;
  const q = url.indexOf("?", start);
  if (q !== -1) end = q;
  const h = url.indexOf("#", start);
  if (h !== -1 && h < end) end = h;
  return url.slice(start, end);
}

/**
 * Wraps the app's request handler: each request is timed until its response starts and counted
 * under its route template. `routes` is read again whenever it has grown (routes added later).
 */
export function instrumentRequests(
  handle: (request: Request) => Promise<Response> | Response,
  routes: () => readonly { path: string }[],
  metrics: MetricsRegistry,
): (request: Request) => Promise<Response> {
  let templates: RouteTemplates | undefined;
  let known = -1;
  return async (request) => {
    const start = performance.now();
    let status = 500;
    try {
      const response = await handle(request);
      status = response.status;
      return response;
    } finally {
      const list = routes();
      if (list.length !== known) {
        templates = new RouteTemplates(list.map((r) => r.path));
        known = list.length;
      }
      const method = METHODS.has(request.method) ? request.method : "OTHER";
      const route = templates!.match(pathnameOf(request.url));
      let series = route.series.get(method);
      if (series === undefined) {
        series = metrics.requestSeries(method, route.template!);
        route.series.set(method, series);
      }
      series.observe(status, (performance.now() - start) / 1000);
    }
  };
}
