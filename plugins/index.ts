// The plugins compiled into the binary, by the name the config's `plugins:` list uses.
import type { PortierPlugin } from "../src/extensions";
import rateLimit from "./rate-limit";
import knockPolicy from "./knock-policy";

export const bundledPlugins: Readonly<Record<string, PortierPlugin<any>>> = {
  "rate-limit": rateLimit,
  "knock-policy": knockPolicy,
};
