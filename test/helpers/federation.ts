// Two (or more) Portier servers in one test process that federate over TLS on loopback: each has
// its own server name ("127.0.0.1:PORT"), signing key and database, a certificate issued by one
// test CA, and trusts that CA (tls_trusted_ca_path) — verification stays on, as in production.
import { join } from "node:path";
import type { PortierServer } from "../../src/app";
import { generateTestCertificateAuthority, issueCertificate, type CertificateAuthority } from "../../src/services/federation/tls-certificate";
import { freePort } from "./net";
import { tempDir, testServer } from "./server";
import type { BuildOptions } from "../../src/app";

let sharedCa: { dir: string; ca: CertificateAuthority } | undefined;

function testCa(): { dir: string; ca: CertificateAuthority } {
  if (!sharedCa) {
    const dir = tempDir("portier-ca-");
    sharedCa = { dir, ca: generateTestCertificateAuthority(dir) };
  }
  return sharedCa;
}

export interface FederatedServer {
  server: PortierServer;
  serverName: string;
  /** https://127.0.0.1:PORT */
  url: string;
}

/** A started Portier serving client and federation APIs over TLS at 127.0.0.1:PORT, which is also its server name. */
export async function federatedServer(overrides: Record<string, unknown> = {}, options: BuildOptions = {}): Promise<FederatedServer> {
  const { dir, ca } = testCa();
  // The server name carries the port, so the port is chosen before the server is built; a rare
  // race with another process taking it in between is retried.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const serverName = `127.0.0.1:${port}`;
    const cert = issueCertificate(ca, join(dir, String(port)), serverName, { ipAddresses: ["127.0.0.1"] });
    const federation = (overrides.federation ?? {}) as Record<string, unknown>;
    const server = await testServer({
      ...overrides,
      server_name: serverName,
      bind: serverName,
      federation: {
        enabled: true,
        tls_certificate_path: cert.certificatePath,
        tls_private_key_path: cert.privateKeyPath,
        tls_trusted_ca_path: ca.certificatePath,
        request_timeout_ms: 10_000,
        ...federation,
      },
    }, options);
    try {
      const { url } = await server.start();
      return { server, serverName, url };
    } catch (error) {
      await server.stop().catch(() => {});
      if (attempt >= 3) throw error;
    }
  }
}

/** Waits until `check` returns a value (not undefined/false), polling; fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
    } catch (error) {
      last = error;
    }
    await Bun.sleep(25);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}
