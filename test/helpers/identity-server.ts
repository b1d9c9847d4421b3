// A fake identity server for third-party invite tests, as sytest's: a long-term and an ephemeral
// key, sha256 lookups, stored invites, /pubkey/isvalid, and bind(), which tells a homeserver of the
// pending invites over /3pid/onbind (in process). Listens on 127.0.0.1, plain HTTP.
import { createHash, randomBytes } from "node:crypto";
import type { PortierServer } from "../../src/app";
import { encodeBase64, encodeUrlSafeBase64 } from "../../src/protocol/base64";
import { nativeEd25519 } from "../../src/protocol/signing/ed25519";
import { signJson } from "../../src/protocol/signing/sign-json";
import { request } from "./server";

export const ID_ACCESS_TOKEN = "swordfish";
export const PEPPER = "matrixrocks";

interface Invite {
  medium: string;
  address: string;
  room_id: string;
  sender: string;
  token: string;
}

/** A fake identity server, as sytest's: a long-term and an ephemeral key, bindings, stored invites. */
export class FakeIdentityServer {
  readonly requests: { method: string; path: string; authorization: string | null; body: any }[] = [];
  private readonly bindings = new Map<string, string>();
  private readonly invites: Invite[] = [];
  private nextToken = 0;
  seed = randomBytes(32);
  ephemeralSeed = randomBytes(32);
  readonly revoked = new Set<string>();
  readonly server: ReturnType<typeof Bun.serve> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (req): Promise<Response> => {
      const url = new URL(req.url);
      const path = url.pathname;
      const body: any = req.method === "POST" ? await req.json().catch(() => undefined) : undefined;
      const authorization = req.headers.get("authorization");
      this.requests.push({ method: req.method, path, authorization, body });
      if (path === "/_matrix/identity/v2/pubkey/isvalid") {
        const key = url.searchParams.get("public_key") ?? "";
        return Response.json({ valid: [this.publicKey, this.ephemeralPublicKey].includes(key) && !this.revoked.has(key) });
      }
      if (authorization !== `Bearer ${ID_ACCESS_TOKEN}`) return Response.json({ errcode: "M_UNAUTHORIZED", error: "Unauthorized" }, { status: 401 });
      if (path === "/_matrix/identity/v2/hash_details") return Response.json({ lookup_pepper: PEPPER, algorithms: ["none", "sha256"] });
      if (path === "/_matrix/identity/v2/lookup") {
        if (body?.algorithm !== "sha256" || body?.pepper !== PEPPER) return Response.json({ errcode: "M_INVALID_PEPPER", error: "bad" }, { status: 400 });
        const mappings: Record<string, string> = {};
        for (const [key, mxid] of this.bindings) {
          const [medium, address] = key.split("\0");
          const hash = encodeUrlSafeBase64(createHash("sha256").update(`${address} ${medium} ${PEPPER}`).digest());
          if (body.addresses.includes(hash)) mappings[hash] = mxid;
        }
        return Response.json({ mappings });
      }
      if (path === "/_matrix/identity/v2/store-invite") {
        const token = `tok${this.nextToken++}`;
        this.invites.push({ medium: body.medium, address: body.address, room_id: body.room_id, sender: body.sender, token });
        const validity: string = `http://${this.name}/_matrix/identity/v2/pubkey/isvalid`;
        return Response.json({
          token,
          display_name: "Bob",
          public_key: this.publicKey,
          public_keys: [
            { public_key: this.publicKey, key_validity_url: validity },
            { public_key: this.ephemeralPublicKey, key_validity_url: validity },
          ],
        });
      }
      return new Response(null, { status: 404 });
    },
  });
  readonly name: string = `127.0.0.1:${this.server.port}`;

  get publicKey() {
    return encodeBase64(nativeEd25519.publicKeyFromSeed(this.seed));
  }
  get ephemeralPublicKey() {
    return encodeBase64(nativeEd25519.publicKeyFromSeed(this.ephemeralSeed));
  }

  sign<T extends Record<string, any>>(object: T, seed = this.seed) {
    return signJson(object as any, this.name, "ed25519:0", seed);
  }

  /** Binds the address and (as sytest's bind_identity) tells the homeserver of the pending invites. */
  async bind(target: PortierServer, medium: string, address: string, mxid: string, beforeNotify?: () => void) {
    this.bindings.set(`${medium}\0${address}`, mxid);
    const invites = this.invites
      .filter((i) => i.medium === medium && i.address === address)
      .map((i) => ({ ...i, mxid, signed: this.sign({ mxid, token: i.token }) }));
    beforeNotify?.();
    return request(target, "POST", "/_matrix/federation/v1/3pid/onbind", this.sign({ medium, address, mxid, invites }));
  }

  rotateKeys() {
    this.seed = randomBytes(32);
    this.ephemeralSeed = randomBytes(32);
  }
}
