import { afterAll, describe, expect, test } from "bun:test";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseConfigYaml, resolveConfig } from "../../src/config/loader";
import { tempDir } from "../helpers/server";

const MAIN = join(import.meta.dir, "../../src/main.ts");
const run = (args: string[], env: Record<string, string> = { PATH: process.env.PATH ?? "" }) => {
  const r = Bun.spawnSync([process.execPath, MAIN, ...args], { env });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};

const dirs: string[] = [];
const dir = () => {
  const d = tempDir("portier-tlscert-");
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The `federation:` block the command prints, as config. */
function printedConfig(out: string) {
  const block = out.slice(out.indexOf("federation:")).split("\n\n")[0]!;
  return resolveConfig({ ...(parseConfigYaml(block, "printed") as object), server_name: "x.test" }).federation;
}

describe("portier generate-tls-cert", () => {
  test("an IP-literal server name: a certificate for that IP, its key (0600), and the config lines", async () => {
    const out = dir();
    const r = run(["generate-tls-cert", "--server-name", "127.0.0.1:8448", "--out", out]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const certificatePath = join(out, "127.0.0.1_8448.crt");
    const privateKeyPath = join(out, "127.0.0.1_8448.key");
    expect(r.out).toContain(`certificate: ${certificatePath}`);
    expect(r.out).toContain(`private key: ${privateKeyPath}`);
    expect(printedConfig(r.out)).toMatchObject({ tls_certificate_path: certificatePath, tls_private_key_path: privateKeyPath });
    expect(r.out).toContain(`tls_trusted_ca_path: ${JSON.stringify(certificatePath)}`);
    expect(statSync(privateKeyPath).mode & 0o777).toBe(0o600);

    const certificate = new X509Certificate(readFileSync(certificatePath));
    expect(certificate.subjectAltName).toBe("IP Address:127.0.0.1");
    expect(certificate.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(certificate.checkPrivateKey(createPrivateKey(readFileSync(privateKeyPath)))).toBe(true);

    // A peer that trusts the certificate reaches a server using it.
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: readFileSync(certificatePath, "utf8"), key: readFileSync(privateKeyPath, "utf8") },
      fetch: () => Response.json({ server: { name: "portier" } }),
    });
    try {
      const url = `https://127.0.0.1:${server.port}/_matrix/federation/v1/version`;
      expect(await (await fetch(url, { tls: { ca: readFileSync(certificatePath, "utf8") } })).json()).toEqual({ server: { name: "portier" } });
      expect(await fetch(url).then(() => "accepted", () => "refused")).toBe("refused");
    } finally {
      server.stop(true);
    }
  });

  test("a DNS server name: a certificate for the hostname, without the port", () => {
    const out = dir();
    const r = run(["generate-tls-cert", "--server-name=peer.localhost:8449", `--out=${out}`]);
    expect(r.code).toBe(0);
    const certificate = new X509Certificate(readFileSync(join(out, "peer.localhost_8449.crt")));
    expect(certificate.subjectAltName).toBe("DNS:peer.localhost");
    expect(certificate.checkHost("peer.localhost")).toBe("peer.localhost");
  });

  test("missing flags or an invalid server name exit 2 and write nothing", () => {
    const out = dir();
    expect(run(["generate-tls-cert", "--out", out]).code).toBe(2);
    expect(run(["generate-tls-cert", "--server-name", "a.test"]).code).toBe(2);
    const bad = run(["generate-tls-cert", "--server-name", "not valid", "--out", out]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("not a valid server name");
    expect(existsSync(join(out, "not_valid.crt"))).toBe(false);
  });

  test("without openssl on PATH: a clear error, exit 1", () => {
    const r = run(["generate-tls-cert", "--server-name", "a.test", "--out", dir()], { PATH: "/nonexistent" });
    expect(r.code).toBe(1);
    expect(r.err).toContain("openssl command was not found");
  });

  test("the usage lists the command", () => {
    expect(run(["help"]).out).toContain("portier generate-tls-cert --server-name NAME --out DIR");
  });
});
