// A Portier in a process of its own (bun src/main.ts serve, or the binary: BENCH_PORTIER_BINARY; its own data folder, no plugins), as an
// operator runs it: the bench's HTTP client then runs on the other core instead of taking time from
// the server's one JS thread, as it does when the client drives a Synapse.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../helpers/net";
import { tempDir } from "../helpers/server";

export interface PortierProcess {
  url: string;
  pid: number;
  /** The server's /metrics exposition text (when started with metrics). */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

export interface PortierProcessOptions {
  /** Extra PORTIER_* settings (e.g. PORTIER_DATABASE__DRIVER). */
  env?: Record<string, string>;
  /** Serve /metrics on a listener of its own. */
  metrics?: boolean;
  /** Write a CPU profile (bun --cpu-prof-md) to this folder when the server stops. */
  profileDir?: string;
  /** Runtime flags for the server process (e.g. --smol). */
  runtimeArgs?: string[];
}

export async function startPortierProcess(options: PortierProcessOptions = {}): Promise<PortierProcess> {
  const port = await freePort();
  const metricsPort = options.metrics ? await freePort() : 0;
  const dir = tempDir("portier-bench-process-");
  const profile = options.profileDir ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${options.profileDir}`] : [];
  // BENCH_PORTIER_BINARY=dist/portier measures the compiled binary (what ships) instead of the
  // sources; runtime flags and profiles are for the sources only.
  const binary = process.env.BENCH_PORTIER_BINARY;
  const command = binary ? [binary, "serve"] : [process.execPath, ...(options.runtimeArgs ?? []), ...profile, join(import.meta.dir, "../../src/main.ts"), "serve"];
  const child = Bun.spawn(command, {
    env: {
      ...process.env,
      PORTIER_BIND: `127.0.0.1:${port}`,
      PORTIER_SERVER_NAME: `127.0.0.1:${port}`,
      PORTIER_DATA_DIR: join(dir, "data"),
      PORTIER_REGISTRATION__ENABLED: "true",
      PORTIER_PLUGINS: "[]",
      PORTIER_LOG_LEVEL: "warn",
      ...(options.metrics ? { PORTIER_METRICS__ENABLED: "true", PORTIER_METRICS__PORT: String(metricsPort) } : {}),
      ...options.env,
    },
    stdout: "inherit",
    stderr: "inherit",
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/_matrix/client/versions`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (child.exitCode !== null || i > 400) {
      child.kill("SIGKILL");
      throw new Error("Portier did not start");
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    pid: child.pid,
    metrics: async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
    stop: async () => {
      child.kill("SIGTERM");
      await child.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The value of one unlabelled sample (e.g. `portier_db_commit_seconds_count`) in exposition text. */
export function metricValue(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}
