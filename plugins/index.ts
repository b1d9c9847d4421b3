// The plugins compiled into the binary, by the name the config's `plugins:` list uses.
import type { PortierPlugin } from "../src/extensions";
import rateLimit from "./rate-limit";
import knockPolicy from "./knock-policy";
import spamPolicy from "./spam-policy";
import httpAntispam from "./http-antispam";

export const bundledPlugins: Readonly<Record<string, PortierPlugin<any>>> = {
  "rate-limit": rateLimit,
  "knock-policy": knockPolicy,
  "spam-policy": spamPolicy,
  "http-antispam": httpAntispam,
};
