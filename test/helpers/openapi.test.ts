// Proves test/helpers/openapi.ts against the spec's own examples and against bodies that break it.
import { describe, expect, test } from "bun:test";
import {
  expectMatchesSpec,
  listSpecOperations,
  loadSpecFile,
  specMismatches,
  specOperation,
  specResponseExamples,
  type SpecApi,
} from "./openapi";

/** The spec's signed key example (api/server-server/examples/server_key.json). */
const serverKey = () => structuredClone(loadSpecFile("api/server-server/examples/server_key.json")) as any;

/** Runs `fn`, expecting it to throw; returns the message. */
function thrownMessage(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("expected an error, none was thrown");
}

describe("expectMatchesSpec: bodies", () => {
  test("GET /_matrix/client/versions with a list of versions passes", () => {
    expectMatchesSpec({ api: "client-server", method: "GET", path: "/_matrix/client/versions", status: 200, body: { versions: ["v1.1"] } });
  });

  test("GET /_matrix/client/versions with versions: 5 fails, naming the JSON path and the complaint", () => {
    const message = thrownMessage(() =>
      expectMatchesSpec({ api: "client-server", method: "GET", path: "/_matrix/client/versions", status: 200, body: { versions: 5 } }),
    );
    expect(message).toContain("$.versions: must be array, got 5");
    expect(message).toContain("api/client-server/versions.yaml");
  });

  test("a missing required field is reported", () => {
    expect(specMismatches({ method: "GET", path: "/_matrix/client/versions", status: 200, body: {} })).toEqual([
      expect.stringContaining("$: must have required property 'versions'"),
    ]);
  });

  test("GET /_matrix/key/v2/server with a signed key body passes", () => {
    expectMatchesSpec({ api: "key-server", method: "GET", path: "/_matrix/key/v2/server", status: 200, body: serverKey() });
    expectMatchesSpec({
      api: "key-server",
      method: "GET",
      path: "/_matrix/key/v2/server",
      status: 200,
      body: {
        server_name: "portier.test",
        verify_keys: { "ed25519:a_bcd": { key: "l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ" } },
        old_verify_keys: {},
        signatures: { "portier.test": { "ed25519:a_bcd": "c2lnbmF0dXJl" } },
        valid_until_ts: 1_900_000_000_000,
      },
    });
  });

  test("GET /_matrix/key/v2/server with a verify key lacking `key` fails, through the $ref into definitions/keys.yaml", () => {
    const body = serverKey();
    body.verify_keys["ed25519:abc123"] = { kye: "oops" };
    const message = thrownMessage(() =>
      expectMatchesSpec({ api: "key-server", method: "GET", path: "/_matrix/key/v2/server", status: 200, body }),
    );
    expect(message).toContain(`$.verify_keys["ed25519:abc123"]: must have required property 'key'`);
    expect(message).toContain("api/server-server/definitions/keys.yaml#/properties/verify_keys/additionalProperties/required");
  });

  test("several mismatches are all listed", () => {
    const body = serverKey();
    delete body.signatures;
    body.valid_until_ts = "soon";
    const problems = specMismatches({ api: "key-server", method: "GET", path: "/_matrix/key/v2/server", status: 200, body });
    expect(problems).toHaveLength(2);
    expect(problems.join("\n")).toContain("must have required property 'signatures'");
    expect(problems.join("\n")).toContain(`$.valid_until_ts: must be integer, got "soon"`);
  });

  test("error responses are checked against their own schema (client-server error.yaml across files)", () => {
    const path = "/_matrix/client/v3/account/whoami";
    expectMatchesSpec({ method: "GET", path, status: 401, body: { errcode: "M_UNKNOWN_TOKEN", error: "Unknown token" } });
    expect(specMismatches({ method: "GET", path, status: 401, body: { errcode: 401 } })).toEqual([
      expect.stringContaining("$.errcode: must be string, got 401  [schema api/client-server/definitions/errors/error.yaml#/properties/errcode/type"),
    ]);
  });

  test("nested event schemas across event-schemas/ are enforced", () => {
    const member = {
      type: "m.room.member",
      state_key: "@alice:x",
      sender: "@alice:x",
      content: { membership: "join" },
      event_id: "$e",
      room_id: "!r:x",
      origin_server_ts: 1,
    };
    const path = "/_matrix/client/r0/rooms/!r:x/members";
    expectMatchesSpec({ method: "GET", path, status: 200, body: { chunk: [member] } });
    const { event_id: _gone, ...noEventId } = member;
    expect(specMismatches({ method: "GET", path, status: 200, body: { chunk: [member, noEventId] } })).toEqual([
      expect.stringContaining("$.chunk[1]: must have required property 'event_id'"),
    ]);
  });

  test("Matrix string formats check the sigil; int64 and the like are annotations", () => {
    const whoami = (user_id: string) => ({ method: "GET", path: "/_matrix/client/v3/account/whoami", status: 200, body: { user_id } });
    expect(specMismatches(whoami("@joe:example.org"))).toEqual([]);
    expect(specMismatches(whoami("joe")).join("\n")).toContain(`must match format "mx-user-id"`);
  });

  test("an undocumented status fails and lists the documented ones", () => {
    const message = thrownMessage(() =>
      expectMatchesSpec({ method: "GET", path: "/_matrix/client/v3/rooms/!r:x/members", status: 418, body: {} }),
    );
    expect(message).toContain("status 418 is not documented");
    expect(message).toContain("documented: 200, 403");
  });

  test("a status documented without a body accepts any body", () => {
    // e.g. 403 of GET /rooms/{roomId}/members has only a description in the spec.
    expect(specMismatches({ method: "GET", path: "/_matrix/client/v3/rooms/!r:x/members", status: 403, body: { errcode: 1 } })).toEqual([]);
    const op = specOperation({ method: "PUT", path: "/_matrix/client/v3/rooms/!r:x/typing/@a:x" })!;
    expect(op.operationId).toBe("setTyping");
    expect(specMismatches({ method: "PUT", path: "/_matrix/client/v3/rooms/!r:x/typing/@a:x", status: 200, body: {} })).toEqual([]);
  });

  test("an unknown path, or a known path with another method, fails", () => {
    expect(thrownMessage(() => expectMatchesSpec({ api: "client-server", method: "GET", path: "/_matrix/client/v3/nope", status: 200, body: {} }))).toContain(
      "no operation in the client-server spec matches this path",
    );
    expect(thrownMessage(() => expectMatchesSpec({ method: "DELETE", path: "/_matrix/client/versions", status: 200, body: {} }))).toContain(
      "the spec has no DELETE for this path (only GET)",
    );
  });
});

describe("specOperation: path templates", () => {
  test("a template with parameters resolves, with the parameters decoded", () => {
    const op = specOperation({ api: "client-server", method: "GET", path: "/_matrix/client/v3/rooms/!r%3Ax/state/m.room.name/somekey?x=1" });
    expect(op).toMatchObject({
      api: "client-server",
      method: "GET",
      template: "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}",
      operationId: "getRoomStateWithKey",
      file: "api/client-server/rooms.yaml",
      params: { roomId: "!r:x", eventType: "m.room.name", stateKey: "somekey" },
    });
  });

  test("an empty state key (trailing slash) matches {stateKey}", () => {
    const op = specOperation({ method: "PUT", path: "/_matrix/client/v3/rooms/!r:x/state/m.room.name/" });
    expect(op?.operationId).toBe("setRoomStateWithKey");
    expect(op?.params.stateKey).toBe("");
  });

  test("an r0 path is the v3 operation", () => {
    const op = specOperation({ api: "client-server", method: "PUT", path: "/_matrix/client/r0/rooms/!r:x/state/m.room.name/k" });
    expect(op?.template).toBe("/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}");
    expect(op?.matchedTemplate).toBe("/_matrix/client/r0/rooms/{roomId}/state/{eventType}/{stateKey}");
    expect(op?.operationId).toBe("setRoomStateWithKey");
    expectMatchesSpec({ method: "PUT", path: "/_matrix/client/r0/rooms/!r:x/state/m.room.name/k", status: 200, body: { event_id: "$e" } });
  });

  test("v1 operations are found under /_matrix/client/v1 only", () => {
    expect(specOperation({ method: "GET", path: "/_matrix/client/v1/rooms/!r:x/hierarchy" })?.operationId).toBe("getSpaceHierarchy");
    expect(specOperation({ method: "GET", path: "/_matrix/client/v3/rooms/!r:x/hierarchy" })).toBeUndefined();
    expect(specOperation({ method: "GET", path: "/_matrix/client/r0/rooms/!r:x/hierarchy" })).toBeUndefined();
  });

  test("a literal segment beats a parameter", () => {
    const path = "/_matrix/federation/v1/query/profile?user_id=@a:x";
    expect(specOperation({ api: "server-server", method: "GET", path })?.template).toBe("/_matrix/federation/v1/query/profile");
    expect(specOperation({ api: "server-server", method: "GET", path: "/_matrix/federation/v1/query/other" })?.template).toBe(
      "/_matrix/federation/v1/query/{queryType}",
    );
  });

  test("unknown paths and methods return undefined", () => {
    expect(specOperation({ api: "client-server", method: "GET", path: "/_matrix/client/v3/nope" })).toBeUndefined();
    expect(specOperation({ method: "GET", path: "/_matrix/client/v3/rooms/!r:x/members/extra" })).toBeUndefined();
    expect(specOperation({ method: "PATCH", path: "/_matrix/client/v3/rooms/!r:x/members" })).toBeUndefined();
  });

  test("the api narrows the search; without it both APIs are searched", () => {
    expect(specOperation({ api: "key-server", method: "GET", path: "/_matrix/key/v2/query/example.org" })?.operationId).toBe("perspectivesKeyQuery");
    expect(specOperation({ api: "key-server", method: "GET", path: "/_matrix/federation/v1/version" })).toBeUndefined();
    expect(specOperation({ api: "client-server", method: "GET", path: "/_matrix/federation/v1/version" })).toBeUndefined();
    expect(specOperation({ api: "server-server", method: "GET", path: "/_matrix/federation/v1/version" })?.operationId).toBe("getVersion");
    expect(specOperation({ method: "GET", path: "/_matrix/federation/v1/version" })?.api).toBe("server-server");
    expect(specOperation({ method: "GET", path: "/.well-known/matrix/client" })?.api).toBe("client-server");
    expect(specOperation({ method: "GET", path: "/.well-known/matrix/server" })?.api).toBe("server-server");
  });

  test("every listed operation resolves to itself from a concrete path", () => {
    for (const api of ["client-server", "server-server"] as const) {
      for (const op of listSpecOperations(api)) {
        const path = op.template.replace(/\{[^}]+\}/g, "p");
        expect(`${op.method} ${specOperation({ api, method: op.method, path })?.template}`).toBe(`${op.method} ${op.template}`);
      }
    }
  });
});

describe("the spec's own response examples match their schemas", () => {
  // Upstream example bugs in spec v1.19 (each checked by hand): `icon` is required by
  // application-service/definitions/protocol_base.yaml but the example protocol lacks it.
  const upstreamBugs = new Set(["GET /_matrix/client/v3/thirdparty/protocols 200"]);

  for (const api of ["client-server", "server-server"] as SpecApi[]) {
    test(api, () => {
      let checked = 0;
      const failures: string[] = [];
      for (const op of listSpecOperations(api)) {
        const path = op.template.replace(/\{[^}]+\}/g, "p");
        for (const status of op.statuses) {
          const name = `${op.method} ${op.template} ${status}`;
          for (const body of specResponseExamples(op, status)) {
            checked++;
            const problems = specMismatches({ api, method: op.method, path, status: Number(status), body });
            if (problems.length > 0 && !upstreamBugs.has(name)) failures.push(`${name}:\n  ${problems.join("\n  ")}`);
            if (problems.length === 0 && upstreamBugs.has(name)) failures.push(`${name}: listed as an upstream bug but passes`);
          }
        }
      }
      expect(failures).toEqual([]);
      expect(checked).toBeGreaterThan(api === "client-server" ? 200 : 50);
    });
  }
});
