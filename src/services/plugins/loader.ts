// Loads the plugins the config names, in order, and lets each register its policies: bundled ones by
// name (compiled into the binary), drop-in files by path (.ts or .js, imported at run time, so the
// shipped binary takes them with no rebuild). Start fails with a message naming the plugin and the
// key when a plugin or its config is bad; a reload that fails keeps the running set and says why.
import { isAbsolute, resolve as resolvePath } from "node:path";
import type { KnockPolicy, PluginHost, PortierPlugin, RateLimiter, SpamPolicy } from "../../extensions";
import type { Clock, Logger } from "../runtime";
import { PolicySet, type PluginSettings } from "./policies";
import { configErrors } from "./config-schema";

export type PluginEntry = string | { name?: string; path?: string; config?: Record<string, unknown>; fail_mode?: "open" | "closed"; timeout_ms?: number };

export class PluginError extends Error {
  override name = "PluginError";
}

export interface LoadedPlugin {
  readonly name: string;
  readonly version: string;
  /** "bundled" or the file it came from. */
  readonly source: string;
  readonly failMode: "open" | "closed";
  readonly timeoutMs: number;
}

export interface PluginLoaderOptions {
  /** The plugins compiled into the binary, by name. */
  readonly bundled: Readonly<Record<string, PortierPlugin<any>>>;
  /** Relative plugin paths are taken from here (the config file's folder, or the working directory). */
  readonly baseDir: string;
  readonly serverName: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly rooms: PluginHost["rooms"];
}

const DEFAULT_TIMEOUT_MS = 1000;

export class PluginLoader {
  private loaded: LoadedPlugin[] = [];
  private generation = 0;

  constructor(
    private readonly policies: PolicySet,
    private readonly options: PluginLoaderOptions,
  ) {}

  get plugins(): readonly LoadedPlugin[] {
    return this.loaded;
  }

  /** Loads every entry into a fresh set and, only if all of them load, makes it the running one. */
  async load(entries: readonly PluginEntry[]): Promise<readonly LoadedPlugin[]> {
    const staging = new PolicySet(this.options.logger);
    const loaded: LoadedPlugin[] = [];
    this.generation++;
    for (const [index, entry] of entries.entries()) loaded.push(await this.loadOne(entry, index, staging));
    const names = loaded.map((p) => p.name);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice) throw new PluginError(`plugins: '${twice}' is loaded twice`);
    this.policies.adopt(staging);
    this.loaded = loaded;
    return loaded;
  }

  private async loadOne(entry: PluginEntry, index: number, into: PolicySet): Promise<LoadedPlugin> {
    const spec = typeof entry === "string" ? (looksLikePath(entry) ? { path: entry } : { name: entry }) : entry;
    const where = `plugins[${index}]`;
    if ((spec.name === undefined) === (spec.path === undefined)) throw new PluginError(`${where}: give either a bundled plugin's name or a file's path`);
    let plugin: PortierPlugin<any>;
    let source = "bundled";
    if (spec.name !== undefined) {
      const found = this.options.bundled[spec.name];
      if (!found) throw new PluginError(`${where}: no bundled plugin '${spec.name}' (bundled: ${Object.keys(this.options.bundled).join(", ")})`);
      plugin = found;
    } else {
      source = isAbsolute(spec.path!) ? spec.path! : resolvePath(this.options.baseDir, spec.path!);
      plugin = await this.importFile(source, where);
    }
    const label = `plugin '${plugin.name}' (${where})`;
    const config = spec.config ?? {};
    if (plugin.configSchema !== undefined) {
      const problems = configErrors(plugin.configSchema, config);
      if (problems.length > 0) throw new PluginError(`${label}: config ${problems[0]}`);
    }
    const settings: PluginSettings = { name: plugin.name, failMode: spec.fail_mode ?? "open", timeoutMs: spec.timeout_ms ?? DEFAULT_TIMEOUT_MS };
    try {
      await plugin.register(this.host(settings, into), config);
    } catch (error) {
      throw new PluginError(`${label}: register failed: ${(error as Error)?.message ?? String(error)}`);
    }
    return { name: plugin.name, version: plugin.version, source, failMode: settings.failMode, timeoutMs: settings.timeoutMs };
  }

  /** Imports a plugin file; a reload imports it anew (a query string makes it a new module). */
  private async importFile(path: string, where: string): Promise<PortierPlugin<any>> {
    let module: { default?: unknown };
    try {
      module = await import(`${path}?portier-load=${this.generation}`);
    } catch (error) {
      throw new PluginError(`${where}: cannot load ${path}: ${(error as Error)?.message ?? String(error)}`);
    }
    const plugin = module.default as Partial<PortierPlugin<any>> | undefined;
    if (!plugin || typeof plugin !== "object") throw new PluginError(`${where}: ${path} has no default export (export default definePlugin({...}))`);
    if (typeof plugin.name !== "string" || plugin.name.length === 0) throw new PluginError(`${where}: ${path}: the plugin has no name`);
    if (typeof plugin.version !== "string") throw new PluginError(`${where}: plugin '${plugin.name}' has no version`);
    if (typeof plugin.register !== "function") throw new PluginError(`${where}: plugin '${plugin.name}' has no register(host, config)`);
    return plugin as PortierPlugin<any>;
  }

  private host(settings: PluginSettings, into: PolicySet): PluginHost {
    const logger = this.options.logger;
    return {
      serverName: this.options.serverName,
      logger: { log: (level, message, fields) => logger.log(level, message, { plugin: settings.name, ...fields }) },
      clock: this.options.clock,
      rooms: this.options.rooms,
      addKnockPolicy: (policy: KnockPolicy) => into.addKnockPolicy(policy, settings),
      addSpamPolicy: (policy: SpamPolicy) => into.addSpamPolicy(policy, settings),
      setRateLimiter: (limiter: RateLimiter) => into.setRateLimiter(limiter, settings),
    };
  }
}

function looksLikePath(entry: string): boolean {
  return entry.includes("/") || /\.(m?[jt]s)$/.test(entry);
}
