// Certificates for local federation peers and tests, made with the `openssl` command line tool:
// a self-signed certificate (trusted by naming it in a peer's tls_trusted_ca_path, or by listing
// the server in tls_skip_verify_servers), or a small test CA and certificates it issues. Keys are
// EC P-256 by default (RSA 2048 on request) and written with mode 0600.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { isIPv4Address, isIPv6Address } from "../../protocol/identifiers";

export interface CertificateFiles {
  /** Absolute path of the PEM certificate. */
  readonly certificatePath: string;
  /** Absolute path of the PEM private key (PKCS#8). */
  readonly privateKeyPath: string;
}

export interface CertificateOptions {
  /** subjectAltName IP addresses (IPv4 or IPv6). */
  readonly ipAddresses?: readonly string[];
  /** subjectAltName DNS names. */
  readonly dnsNames?: readonly string[];
  /** Validity in days. Default 365. */
  readonly days?: number;
  /** Default "ec" (P-256). */
  readonly keyType?: "ec" | "rsa";
}

/** A CA made by generateTestCertificateAuthority: its certificate is what peers put in tls_trusted_ca_path. */
export type CertificateAuthority = CertificateFiles;

export class OpensslError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OpensslError";
  }
}

/**
 * The subjectAltName entries for a server name: its host as an IP address or a DNS name (without
 * the port, which certificates do not carry).
 */
export function subjectAltNamesFor(serverName: string): { ipAddresses: string[]; dnsNames: string[] } {
  let host = serverName;
  if (host.startsWith("[")) host = host.slice(1, host.indexOf("]"));
  else if (host.includes(":")) host = host.slice(0, host.lastIndexOf(":"));
  if (isIPv4Address(host) || isIPv6Address(host)) return { ipAddresses: [host], dnsNames: [] };
  return { ipAddresses: [], dnsNames: [host] };
}

/** Writes `<name>.crt` and `<name>.key` (the name made file-safe) into `dir`: a self-signed certificate for the given names. */
export function generateSelfSignedCertificate(dir: string, name: string, options: CertificateOptions = {}): CertificateFiles {
  const files = outputFiles(dir, name);
  withWorkDir((work) => {
    const config = join(work, "req.cnf");
    writeFileSync(config, requestConfig(name, leafExtensions(name, options)));
    openssl(["req", "-x509", "-config", config, "-extensions", "ext", "-new", ...newKeyArgs(options.keyType), "-nodes",
      "-keyout", files.privateKeyPath, "-out", files.certificatePath, "-days", String(options.days ?? 365), "-set_serial", randomSerial()]);
  });
  chmodSync(files.privateKeyPath, 0o600);
  return files;
}

/** Writes a CA certificate and key (`<name>.crt`, `<name>.key`, default name "test-ca") into `dir`. */
export function generateTestCertificateAuthority(dir: string, options: { name?: string; days?: number; keyType?: "ec" | "rsa" } = {}): CertificateAuthority {
  const name = options.name ?? "test-ca";
  const files = outputFiles(dir, name);
  withWorkDir((work) => {
    const config = join(work, "ca.cnf");
    const extensions = ["basicConstraints = critical,CA:TRUE,pathlen:0", "keyUsage = critical,keyCertSign,cRLSign", "subjectKeyIdentifier = hash"];
    writeFileSync(config, requestConfig(`Portier ${name}`, extensions));
    openssl(["req", "-x509", "-config", config, "-extensions", "ext", "-new", ...newKeyArgs(options.keyType), "-nodes",
      "-keyout", files.privateKeyPath, "-out", files.certificatePath, "-days", String(options.days ?? 30), "-set_serial", randomSerial()]);
  });
  chmodSync(files.privateKeyPath, 0o600);
  return files;
}

/** Writes `<name>.crt` and `<name>.key` into `dir`: a certificate for the given names, signed by `ca`. */
export function issueCertificate(ca: CertificateAuthority, dir: string, name: string, options: CertificateOptions = {}): CertificateFiles {
  const files = outputFiles(dir, name);
  withWorkDir((work) => {
    const config = join(work, "leaf.cnf");
    const csr = join(work, "leaf.csr");
    writeFileSync(config, requestConfig(name, [...leafExtensions(name, options), "authorityKeyIdentifier = keyid"]));
    openssl(["req", "-config", config, "-new", ...newKeyArgs(options.keyType), "-nodes", "-keyout", files.privateKeyPath, "-out", csr]);
    openssl(["x509", "-req", "-in", csr, "-CA", ca.certificatePath, "-CAkey", ca.privateKeyPath, "-set_serial", randomSerial(),
      "-days", String(options.days ?? 365), "-extfile", config, "-extensions", "ext", "-out", files.certificatePath]);
  });
  chmodSync(files.privateKeyPath, 0o600);
  return files;
}

function outputFiles(dir: string, name: string): CertificateFiles {
  const absolute = resolve(dir);
  mkdirSync(absolute, { recursive: true });
  // Server names may hold ':' and '[ ]' (ports, IPv6), which do not belong in file names everywhere.
  const base = name.replace(/[^A-Za-z0-9._-]/g, "_");
  return { certificatePath: join(absolute, `${base}.crt`), privateKeyPath: join(absolute, `${base}.key`) };
}

function leafExtensions(name: string, options: CertificateOptions): string[] {
  const ipAddresses = options.ipAddresses ?? [];
  const dnsNames = options.dnsNames ?? [];
  if (ipAddresses.length === 0 && dnsNames.length === 0) throw new OpensslError(`certificate for ${name}: give at least one IP address or DNS name`);
  for (const ip of ipAddresses) if (!isIPv4Address(ip) && !isIPv6Address(ip)) throw new OpensslError(`not an IP address: ${JSON.stringify(ip)}`);
  for (const dns of dnsNames) if (!/^[A-Za-z0-9*][A-Za-z0-9.-]*$/.test(dns)) throw new OpensslError(`not a DNS name: ${JSON.stringify(dns)}`);
  const altNames = [...ipAddresses.map((ip) => `IP:${ip}`), ...dnsNames.map((dns) => `DNS:${dns}`)];
  return [
    `subjectAltName = ${altNames.join(",")}`,
    "basicConstraints = critical,CA:FALSE",
    "keyUsage = critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage = serverAuth",
  ];
}

/** An openssl config with no dependence on the system's openssl.cnf. */
function requestConfig(commonName: string, extensions: readonly string[]): string {
  // CN is at most 64 characters, and only informative: names are checked against subjectAltName.
  const cn = commonName.replace(/[^A-Za-z0-9 .:_\[\]-]/g, "_").slice(0, 64);
  return ["[req]", "prompt = no", "distinguished_name = dn", "[dn]", `CN = ${cn}`, "[ext]", ...extensions, ""].join("\n");
}

function newKeyArgs(keyType: "ec" | "rsa" = "ec"): string[] {
  return keyType === "rsa" ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
}

function randomSerial(): string {
  // A positive 63-bit serial (the top bit clear keeps it positive in DER).
  const bytes = randomBytes(8);
  bytes[0] = bytes[0]! & 0x7f;
  return `0x${bytes.toString("hex")}`;
}

function withWorkDir(work: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "portier-openssl-"));
  try {
    work(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function openssl(args: string[]): void {
  const result = spawnSync("openssl", args, { encoding: "utf8" });
  if (result.error !== undefined) {
    const code = (result.error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new OpensslError("the openssl command was not found on PATH; install OpenSSL (e.g. `apt-get install openssl`) to generate certificates");
    throw new OpensslError(`openssl could not be run: ${result.error.message}`);
  }
  if (result.status !== 0) {
    throw new OpensslError(`openssl ${args[0]} failed (exit ${result.status}): ${(result.stderr || result.stdout).trim()}`);
  }
}
