// The `portier` command line: serve | generate-config | generate-tls-cert | register-user | migrate-db | version.
import "reflect-metadata";
import { dirname, resolve } from "node:path";
import { buildServer } from "./app";
import { ConfigError, loadConfig } from "./config/loader";
import { sampleConfig } from "./config/sample";
import { PORTIER_VERSION } from "./version";
import { registerUser } from "./register-user";
import { migrateDb } from "./migrate-db";
import { isValidServerName } from "./protocol/identifiers";
import { generateSelfSignedCertificate, subjectAltNamesFor } from "./services/federation/tls-certificate";

const USAGE = `Usage:
  portier serve [--config FILE]                 run the homeserver (embedded defaults without --config)
  portier generate-config [--server-name NAME]  print a commented YAML config
  portier generate-tls-cert --server-name NAME --out DIR
                                                write a self-signed federation TLS certificate and key (local test peers)
  portier register-user --config FILE --user NAME --password PW [--admin]
                                                create a local user (registration need not be open)
  portier migrate-db --to postgres://... [--config FILE]
                                                copy a stopped server's SQLite database into an empty PostgreSQL database
  portier version                               print the version
Environment variables override the config: PORTIER_SERVER_NAME, PORTIER_BIND, PORTIER_DATA_DIR, ...`;

/** Reads `--name value` and `--name=value` flags; anything else is an error. */
export function parseFlags(args: string[], allowed: readonly string[], switches: readonly string[] = []): Record<string, string> {
  const flags: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (match && switches.includes(match[1]) && match[2] === undefined) {
      flags[match[1]] = "true";
      continue;
    }
    if (!match || !allowed.includes(match[1])) throw new ConfigError(`unknown argument '${arg}'\n\n${USAGE}`);
    const value = match[2] ?? args[++i];
    if (value === undefined) throw new ConfigError(`--${match[1]} needs a value`);
    flags[match[1]] = value;
  }
  return flags;
}

async function serve(args: string[]): Promise<void> {
  const flags = parseFlags(args, ["config"]);
  const config = loadConfig({ configFile: flags.config, env: process.env });
  // Plugins reload from the config file as it is then (SIGHUP, or the admin API).
  const currentPlugins = () => loadConfig({ configFile: flags.config, env: process.env }).plugins;
  const server = await buildServer(config, { pluginBaseDir: flags.config ? dirname(resolve(flags.config)) : process.cwd(), pluginEntries: currentPlugins });
  await server.start();
  process.on("SIGHUP", () => {
    server.reloadPlugins().catch((error) => process.stderr.write(`portier: plugin reload failed, the running plugins stay: ${(error as Error).message}\n`));
  });
  let stopping = false;
  const shutdown = async () => {
    // A second signal while stopping forces the exit.
    if (stopping) process.exit(1);
    stopping = true;
    try {
      await server.stop();
    } finally {
      process.exit(0);
    }
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}

export async function main(argv: string[]): Promise<number> {
  const [command = "serve", ...rest] = argv;
  try {
    switch (command) {
      case "serve":
        await serve(rest);
        return -1; // keeps running
      case "generate-config": {
        const flags = parseFlags(rest, ["server-name"]);
        process.stdout.write(sampleConfig(flags["server-name"] ? { server_name: flags["server-name"] } : {}));
        return 0;
      }
      case "generate-tls-cert": {
        const flags = parseFlags(rest, ["server-name", "out"]);
        const serverName = flags["server-name"];
        if (!serverName || !flags.out) throw new ConfigError(`generate-tls-cert needs --server-name and --out\n\n${USAGE}`);
        if (!isValidServerName(serverName)) throw new ConfigError(`--server-name: '${serverName}' is not a valid server name`);
        const files = generateSelfSignedCertificate(flags.out, serverName, subjectAltNamesFor(serverName));
        process.stdout.write(
          `certificate: ${files.certificatePath}\nprivate key: ${files.privateKeyPath}\n\n` +
            `# in the config of ${serverName}:\nfederation:\n` +
            `  tls_certificate_path: ${JSON.stringify(files.certificatePath)}\n  tls_private_key_path: ${JSON.stringify(files.privateKeyPath)}\n\n` +
            `# peers trust it with federation.tls_trusted_ca_path: ${JSON.stringify(files.certificatePath)}\n` +
            `# (or by listing ${serverName} in federation.tls_skip_verify_servers)\n`,
        );
        return 0;
      }
      case "register-user": {
        const flags = parseFlags(rest, ["config", "user", "password"], ["admin"]);
        if (!flags.user || !flags.password) throw new ConfigError(`register-user needs --user and --password\n\n${USAGE}`);
        const config = loadConfig({ configFile: flags.config, env: process.env });
        const userId = await registerUser(config, { user: flags.user, password: flags.password, admin: flags.admin === "true" }, { log: () => {} });
        process.stdout.write(`registered ${userId}\n`);
        return 0;
      }
      case "migrate-db": {
        const flags = parseFlags(rest, ["config", "to"]);
        if (!flags.to) throw new ConfigError(`migrate-db needs --to postgres://...\n\n${USAGE}`);
        const config = loadConfig({ configFile: flags.config, env: process.env });
        await migrateDb(config, flags.to, (line) => process.stdout.write(`${line}\n`));
        return 0;
      }
      case "version":
      case "--version":
        process.stdout.write(`portier ${PORTIER_VERSION}\n`);
        return 0;
      case "help":
      case "--help":
        process.stdout.write(USAGE + "\n");
        return 0;
      default:
        process.stderr.write(`unknown command '${command}'\n\n${USAGE}\n`);
        return 2;
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`portier: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`portier: ${(e as Error).message}\n`);
    return 1;
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  if (code >= 0) process.exit(code);
}
