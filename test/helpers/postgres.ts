// A real PostgreSQL server for tests, started by the tests themselves: Debian's binaries (initdb,
// pg_ctl) in a temporary folder, listening on an ephemeral 127.0.0.1 port, stopped when the test
// process exits. Each caller gets a fresh database. Where no PostgreSQL is installed the postgres
// variants are skipped with one line saying so, unless TEST_POSTGRES=require (CI sets it).
import { spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./net";

interface RunningServer {
  port: number;
  dataDir: string;
  bin: string;
  asUser: string[];
}

function findBinDir(): string | undefined {
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    const versions = readdirSync(base).filter((v) => existsSync(join(base, v, "bin", "initdb"))).sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(base, versions[0], "bin");
  }
  const initdb = Bun.which("initdb");
  return initdb ? initdb.replace(/\/initdb$/, "") : undefined;
}


function run(server: Pick<RunningServer, "bin" | "asUser">, tool: string, args: string[]): { ok: boolean; output: string } {
  const result = spawnSync(server.asUser[0] ?? join(server.bin, tool), server.asUser.length ? [...server.asUser.slice(1), join(server.bin, tool), ...args] : args, { encoding: "utf8" });
  return { ok: result.status === 0, output: `${result.stdout ?? ""}${result.stderr ?? ""}${result.error ? String(result.error) : ""}` };
}

async function start(): Promise<RunningServer | string> {
  const bin = findBinDir();
  if (!bin) return "no PostgreSQL binaries (initdb) found";
  // PostgreSQL refuses to run as root: as root, run it as the postgres user the package created.
  const asUser = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--"] : [];
  const root = mkdtempSync(join(tmpdir(), "portier-pg-"));
  if (asUser.length) chownSync(root, Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim()), Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim()));
  const dataDir = join(root, "data");
  const server = { bin, asUser, dataDir, port: 0 };
  const init = run(server, "initdb", ["-D", dataDir, "-A", "trust", "-U", "portier", "--locale=C", "-E", "UTF8"]);
  if (!init.ok) return `initdb failed: ${init.output.trim().split("\n").slice(-3).join(" / ")}`;
  for (let attempt = 0; attempt < 3; attempt++) {
    const running = { ...server, port: await freePort() };
    if (pgStart(running)) return running;
  }
  return `pg_ctl could not start a server (see ${join(root, "server.log")})`;
}

function pgStart(server: RunningServer): boolean {
  const root = join(server.dataDir, "..");
  // fsync off: these databases are thrown away; durability of Portier itself is tested on its side.
  // Benches set TEST_POSTGRES_FSYNC=on to compare engines fairly.
  const fsync = process.env.TEST_POSTGRES_FSYNC === "on" ? "on" : "off";
  const options = `-c listen_addresses=127.0.0.1 -p ${server.port} -k ${root} -c fsync=${fsync} -c max_connections=400 -c shared_buffers=128MB`;
  return run(server, "pg_ctl", ["-D", server.dataDir, "-o", options, "-l", join(root, "server.log"), "-w", "-t", "30", "start"]).ok;
}

/**
 * A PostgreSQL server of the caller's own, for tests that stop and restart it (a database lost and
 * back while Portier runs). Stopped with the test process at the latest.
 */
export async function ownPostgresServer(): Promise<{ url: string; stop(): void; restart(): void; remove(): void }> {
  if (!(await postgresAvailable())) throw new Error("PostgreSQL is not available in this test run");
  const server = await start();
  if (typeof server === "string") throw new Error(server);
  stopWhenGone(server);
  const { SQL } = await import("bun");
  const admin = new SQL({ url: `postgres://portier@127.0.0.1:${server.port}/postgres`, max: 1 });
  await admin.unsafe("CREATE DATABASE portier TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'");
  await admin.close();
  return {
    url: `postgres://portier@127.0.0.1:${server.port}/portier`,
    stop: () => void run(server, "pg_ctl", ["-D", server.dataDir, "-m", "fast", "stop"]),
    restart: () => {
      if (!pgStart(server)) throw new Error("the PostgreSQL server did not start again");
    },
    remove: () => stop(server),
  };
}

let running: Promise<RunningServer | string> | undefined;
let databases = 0;
let announced = false;

function stop(server: RunningServer): void {
  run(server, "pg_ctl", ["-D", server.dataDir, "-m", "immediate", "stop"]);
  rmSync(join(server.dataDir, ".."), { recursive: true, force: true });
}

/**
 * A watchdog outside this process stops the server once the test process is gone, however it ends
 * (bun test does not always run exit handlers, and a killed process runs none).
 */
function stopWhenGone(server: RunningServer): void {
  const pgCtl = [...server.asUser, join(server.bin, "pg_ctl")].map((a) => `'${a}'`).join(" ");
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${pgCtl} -D '${server.dataDir}' -m immediate stop >/dev/null 2>&1; rm -rf '${join(server.dataDir, "..")}'`;
  spawn("sh", ["-c", script], { detached: true, stdio: "ignore" }).unref();
}

async function server(): Promise<RunningServer | undefined> {
  running ??= start().then((s) => {
    if (typeof s !== "string") {
      stopWhenGone(s);
      process.once("exit", () => stop(s));
    }
    return s;
  });
  const s = await running;
  if (typeof s === "string") {
    if (process.env.TEST_POSTGRES === "require") throw new Error(`PostgreSQL is required for these tests: ${s}`);
    if (!announced) console.warn(`[portier tests] PostgreSQL variants skipped: ${s}`);
    announced = true;
    return undefined;
  }
  return s;
}

/** Whether PostgreSQL variants run in this process (starts the server on first call). */
export async function postgresAvailable(): Promise<boolean> {
  if (process.env.TEST_POSTGRES === "off") return false;
  return (await server()) !== undefined;
}

/** A URL of a new, empty database (C collation) on the test server. */
export async function freshPostgresUrl(): Promise<string> {
  const s = await server();
  if (!s) throw new Error("PostgreSQL is not available in this test run");
  const name = `portier_${process.pid}_${++databases}`;
  const { SQL } = await import("bun");
  const admin = new SQL({ url: `postgres://portier@127.0.0.1:${s.port}/postgres`, max: 1 });
  try {
    await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`);
  } finally {
    await admin.close();
  }
  return `postgres://portier@127.0.0.1:${s.port}/${name}`;
}
