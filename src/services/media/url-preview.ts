// URL previews (client-server-api GET /media/preview_url): the OpenGraph data of a page, with its
// og:image fetched into the content repository and given as an mxc:// URI. Off unless configured:
// the server then fetches URLs on its users' behalf, through safeFetch (public addresses only, size
// and time limits). Answers are kept for an hour, as Synapse keeps them, so that every client of a
// room does not make the server fetch the same page again.
import { MatrixError } from "../../protocol/errors";
import type { Clock } from "../runtime";
import { mediaTypeEssence } from "./disposition";
import { readImageInfo } from "./image-format";
import type { FetchedResource } from "./safe-fetch";

export interface UrlPreviewDeps {
  readonly fetch: (url: string) => Promise<FetchedResource>;
  /** Stores fetched image bytes as local media of `userId`; returns its mxc:// URI. */
  readonly storeImage: (bytes: Uint8Array, contentType: string | undefined, userId: string) => Promise<string>;
  readonly clock: Clock;
  readonly cacheMs?: number;
}

type Preview = Record<string, string | number>;

const MAX_CACHED = 1000;
/** Only the start of a page is read for its metadata (it is in <head>). */
const MAX_HTML_CHARS = 1024 * 1024;

export class UrlPreviewer {
  private readonly cache = new Map<string, { at: number; preview: Preview }>();

  constructor(private readonly deps: UrlPreviewDeps) {}

  async preview(url: string, userId: string): Promise<Preview> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new MatrixError("M_INVALID_PARAM", "url is not a valid URL");
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new MatrixError("M_INVALID_PARAM", "Only http and https URLs can be previewed");
    const now = this.deps.clock.now();
    const cached = this.cache.get(parsed.href);
    if (cached !== undefined && now - cached.at < (this.deps.cacheMs ?? 3600_000)) return cached.preview;

    const page = await this.deps.fetch(parsed.href);
    if (page.status !== 200) throw new MatrixError("M_UNKNOWN", `The URL answered ${page.status}`, 502);
    const type = mediaTypeEssence(page.headers.get("content-type") ?? undefined);
    let preview: Preview;
    if (type.startsWith("image/")) {
      preview = await this.imagePreview(page.bytes, page.headers.get("content-type") ?? undefined, userId);
    } else if (type === "text/html" || type === "application/xhtml+xml") {
      const tags = openGraphOf(decodeText(page.bytes, page.headers.get("content-type")), page.url);
      preview = { ...tags };
      const image = tags["og:image"];
      delete preview["og:image"];
      if (typeof image === "string") {
        try {
          const fetched = await this.deps.fetch(image);
          if (fetched.status === 200) Object.assign(preview, await this.imagePreview(fetched.bytes, fetched.headers.get("content-type") ?? undefined, userId));
        } catch {
          // A page whose image cannot be had is still previewed, without it.
        }
      }
    } else {
      preview = {};
    }
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(parsed.href, { at: now, preview });
    return preview;
  }

  private async imagePreview(bytes: Uint8Array, contentType: string | undefined, userId: string): Promise<Preview> {
    const info = readImageInfo(bytes);
    if (info === undefined) return {};
    const mxc = await this.deps.storeImage(bytes, contentType, userId);
    return { "og:image": mxc, "og:image:type": `image/${info.format}`, "og:image:width": info.width, "og:image:height": info.height, "matrix:image:size": bytes.byteLength };
  }
}

function decodeText(bytes: Uint8Array, contentType: string | null): string {
  const head = bytes.subarray(0, MAX_HTML_CHARS);
  const declared = /charset\s*=\s*"?([\w-]+)/i.exec(contentType ?? "")?.[1] ?? /<meta[^>]+charset\s*=\s*["']?([\w-]+)/i.exec(new TextDecoder("latin1").decode(head.subarray(0, 4096)))?.[1];
  try {
    return new TextDecoder((declared ?? "utf-8") as "utf-8").decode(head);
  } catch {
    return new TextDecoder("utf-8").decode(head);
  }
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name: string) => {
    if (name[0] === "#") {
      const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[name.toLowerCase()] ?? whole;
  });
}

function attributesOf(tag: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const match of tag.matchAll(/([a-zA-Z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))/g)) {
    attributes.set(match[1]!.toLowerCase(), decodeEntities(match[2] ?? match[3] ?? match[4] ?? ""));
  }
  return attributes;
}

/**
 * The og:* properties of a page (first value of each), with og:title from <title> and
 * og:description from the description meta tag when the page has none; og:image made absolute.
 */
export function openGraphOf(html: string, pageUrl: string): Record<string, string> {
  const tags: Record<string, string> = {};
  let description: string | undefined;
  for (const match of html.matchAll(/<meta\b[^>]*>/gi)) {
    const attributes = attributesOf(match[0]);
    const key = attributes.get("property") ?? attributes.get("name");
    const content = attributes.get("content");
    if (key === undefined || content === undefined) continue;
    const name = key.toLowerCase();
    if (name.startsWith("og:") && !(name in tags)) tags[name] = content.trim().slice(0, 2000);
    else if (name === "description" && description === undefined) description = content.trim().slice(0, 2000);
  }
  if (!("og:title" in tags)) {
    const title = /<title\b[^>]*>([\s\S]*?)<\/title>/i.exec(html)?.[1];
    if (title !== undefined && title.trim() !== "") tags["og:title"] = decodeEntities(title.trim().replace(/\s+/g, " ")).slice(0, 2000);
  }
  if (!("og:description" in tags) && description !== undefined) tags["og:description"] = description;
  if (tags["og:image"] !== undefined) {
    try {
      tags["og:image"] = new URL(tags["og:image"], pageUrl).href;
    } catch {
      delete tags["og:image"];
    }
  }
  return tags;
}
