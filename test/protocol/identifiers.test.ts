import { describe, expect, test } from "bun:test";
import {
  isIPv6Address,
  isValidEventId,
  isValidRoomAlias,
  isValidRoomId,
  isValidServerName,
  isValidUserId,
  parseEventId,
  parseRoomAlias,
  parseRoomId,
  parseServerName,
  parseUserId,
  serverNameOf,
  utf8Length,
  validateNewUserLocalpart,
} from "../../src/protocol/identifiers";
import { ROOM_VERSIONS } from "../../src/protocol/room-versions";

const V1 = ROOM_VERSIONS.get("1")!;
const V11 = ROOM_VERSIONS.get("11")!;
const V12 = ROOM_VERSIONS.get("12")!;
const HASH = "Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"; // the v4 event ID example, 43 chars

describe("server names (appendices: Server Name)", () => {
  const valid: [string, string, number | undefined][] = [
    ["matrix.org", "dns", undefined],
    ["matrix.org:8888", "dns", 8888],
    ["1.2.3.4", "ipv4", undefined],
    ["1.2.3.4:1234", "ipv4", 1234],
    ["[1234:5678::abcd]", "ipv6", undefined],
    ["[1234:5678::abcd]:5678", "ipv6", 5678],
    ["127.0.0.1:8448", "ipv4", 8448],
    ["localhost", "dns", undefined],
    ["MATRIX.ORG", "dns", undefined],
    ["a-b.c-d.example", "dns", undefined],
    ["x", "dns", undefined],
    ["1.2.3.4.5", "dns", undefined], // five numbers are no IPv4address, but all are dns-chars
    ["255.255.255.255", "ipv4", undefined],
    ["0.0.0.0:0", "ipv4", 0],
    ["example.com:65535", "dns", 65535],
    ["example.com:00080", "dns", 80],
    ["[::1]", "ipv6", undefined],
    ["[::]", "ipv6", undefined],
    ["[1::]", "ipv6", undefined],
    ["[2001:db8:0:0:0:0:2:1]", "ipv6", undefined],
    ["[2001:DB8::8:800:200C:417A]", "ipv6", undefined],
    ["[::ffff:192.0.2.128]", "ipv6", undefined],
    ["[0:0:0:0:0:0:13.1.68.3]", "ipv6", undefined],
    ["[1:2:3:4:5:6:7::]", "ipv6", undefined],
    ["a".repeat(255), "dns", undefined],
  ];
  for (const [name, kind, port] of valid) {
    test(`accepts ${name.length > 40 ? `${name.length}-char name` : name}`, () => {
      const parsed = parseServerName(name);
      expect(parsed.ok).toBe(true);
      if (parsed.ok) {
        expect(parsed.value.kind).toBe(kind as never);
        expect(parsed.value.port).toBe(port);
      }
    });
  }

  const invalid = [
    "",
    ":8448",
    "matrix.org:",
    "matrix.org:abc",
    "matrix.org:123456",
    "matrix.org:65536",
    "matrix.org:99999",
    "matrix.org:-1",
    "matrix.org:80:90",
    "matrix_org",
    "matrix org",
    "matrix.org/",
    "mätrix.org",
    "256.1.1.1",
    "1.2.3.999",
    "[1234:5678::abcd",
    "1234:5678::abcd",
    "[]",
    "[:]",
    "[1:2:3:4:5:6:7:8:9]",
    "[1:2:3:4:5:6:7]",
    "[1::2::3]",
    "[12345::1]",
    "[g::1]",
    "[::1]x",
    "[::1]:",
    "[::1.2.3.4.5]",
    "[::256.1.1.1]",
    "[1.2.3.4::]",
    "[1:2:3:4:5:6:7:8::]",
    "a".repeat(256),
  ];
  for (const name of invalid) {
    test(`rejects ${JSON.stringify(name.length > 40 ? `${name.length}-char name` : name)}`, () => {
      const parsed = parseServerName(name);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) expect(parsed.error.length).toBeGreaterThan(0);
    });
  }

  test("IPv6 literals longer than 45 characters are refused by the grammar", () => {
    expect(isIPv6Address("0000:0000:0000:0000:0000:ffff:192.168.100.228")).toBe(true); // 45
    expect(isIPv6Address("00000:0000:0000:0000:0000:ffff:192.168.100.228")).toBe(false);
  });

  test("isValidServerName agrees with parseServerName", () => {
    expect(isValidServerName("matrix.org")).toBe(true);
    expect(isValidServerName("matrix.org:")).toBe(false);
  });
});

describe("user IDs (appendices: User Identifiers)", () => {
  const strictValid = [
    "@alice:example.com",
    "@a:b",
    "@0123456789abcdefghijklmnopqrstuvwxyz._=-/+:example.com",
    "@fx1795391557_v8_alice:127.0.0.1:8448",
    "@bob:[::1]:8448",
  ];
  for (const id of strictValid) {
    test(`accepts ${id} in both grammars`, () => {
      expect(isValidUserId(id, "new")).toBe(true);
      expect(isValidUserId(id, "received")).toBe(true);
      const parsed = parseUserId(id);
      expect(parsed.ok && parsed.value.compliant).toBe(true);
    });
  }

  test("splits at the first ':' so the server name keeps its port", () => {
    const parsed = parseUserId("@alice:example.com:8448");
    expect(parsed).toEqual({ ok: true, value: { localpart: "alice", serverName: "example.com:8448", compliant: true } });
  });

  // Historical IDs: accepted when received, refused for new accounts.
  const historicalOnly: [string, boolean][] = [
    ["@Alice:example.com", true], // upper case
    ["@alice!:example.com", true],
    ["@ali ce:example.com", false], // space is outside U+0021..U+007E
    ["@:example.com", false], // empty localpart
    ["@ålice:example.com", false],
    ["@\u0001ctrl:example.com", false],
    ["@😀:example.com", false],
    ["@a#b$c:example.com", true],
  ];
  for (const [id, compliant] of historicalOnly) {
    test(`accepts historical ${JSON.stringify(id)} only as received (compliant=${compliant})`, () => {
      const received = parseUserId(id, "received");
      expect(received.ok).toBe(true);
      if (received.ok) expect(received.value.compliant).toBe(compliant);
      expect(parseUserId(id, "new").ok).toBe(false);
    });
  }

  const invalid = [
    "",
    "alice:example.com", // no sigil
    "#alice:example.com",
    "@alice", // no server name
    "@alice:", // empty server name
    "@alice:exa mple.com",
    "@alice:example.com:port",
    "@ali\u0000ce:example.com", // NUL
    "@ali\ud800ce:example.com", // lone surrogate
    "@alice:256.0.0.1",
  ];
  for (const id of invalid) {
    test(`rejects ${JSON.stringify(id)} in both grammars`, () => {
      expect(parseUserId(id, "received").ok).toBe(false);
      expect(parseUserId(id, "new").ok).toBe(false);
    });
  }

  test("the 255-byte limit counts UTF-8 bytes, sigil and domain included", () => {
    const domain = "example.com";
    const at255 = `@${"a".repeat(255 - 2 - domain.length)}:${domain}`;
    expect(utf8Length(at255)).toBe(255);
    expect(isValidUserId(at255, "new")).toBe(true);
    expect(isValidUserId(`@a${at255.slice(1)}`, "new")).toBe(false);
    // 3-byte characters: fewer UTF-16 units than bytes.
    const wide = `@${"€".repeat(81)}:${domain}`; // 1 + 243 + 1 + 11 = 256 bytes
    expect(wide.length).toBeLessThan(255);
    expect(isValidUserId(wide, "received")).toBe(false);
    expect(isValidUserId(`@${"€".repeat(80)}:${domain}`, "received")).toBe(true);
  });

  test("validateNewUserLocalpart applies the strict grammar and the length of the whole ID", () => {
    expect(validateNewUserLocalpart("alice", "example.com")).toEqual({ ok: true, value: "@alice:example.com" });
    expect(validateNewUserLocalpart("Alice", "example.com").ok).toBe(false);
    expect(validateNewUserLocalpart("", "example.com").ok).toBe(false);
    expect(validateNewUserLocalpart("al:ice", "example.com").ok).toBe(false);
    expect(validateNewUserLocalpart("a".repeat(242), "example.com").ok).toBe(true); // 1 + 242 + 1 + 11 = 255 bytes
    expect(validateNewUserLocalpart("a".repeat(243), "example.com").ok).toBe(false);
  });
});

describe("room IDs (appendices: Room IDs)", () => {
  test("server form: !opaque:server", () => {
    expect(parseRoomId("!abc:example.com")).toEqual({
      ok: true,
      value: { kind: "server", opaqueId: "abc", serverName: "example.com" },
    });
    expect(isValidRoomId("!jEsUZKDJdhlrceRyVU:example.org")).toBe(true);
    expect(isValidRoomId("!RvcPyKHNqCQRGXLZsQ:127.0.0.1:8448")).toBe(true);
    expect(isValidRoomId("!Ünïcødé and spaces:example.org")).toBe(true); // any code point but ':' and NUL
  });

  test("v12 form: ! + 43 URL-safe base64 characters", () => {
    expect(parseRoomId(`!${HASH}`)).toEqual({ ok: true, value: { kind: "hash", hash: HASH } });
    expect(isValidRoomId(`!${HASH}`, V12)).toBe(true);
  });

  test("the room version chooses the form", () => {
    expect(isValidRoomId(`!${HASH}`, V11)).toBe(false);
    expect(isValidRoomId(`!${HASH}`, V1)).toBe(false);
    expect(isValidRoomId("!abc:example.com", V12)).toBe(false);
    expect(isValidRoomId("!abc:example.com", V11)).toBe(true);
  });

  const invalid = [
    "",
    "abc:example.com",
    "$abc:example.com",
    "!",
    "!abc", // no server and not a hash
    "!:example.com", // empty localpart
    "!abc:",
    "!abc:bad server",
    "!a\u0000c:example.com",
    `!${HASH}A`, // 44 characters
    `!${HASH.slice(1)}`, // 42
    `!${HASH.slice(0, 42)}+`, // standard alphabet is not the v12 one
    `!${HASH.slice(0, 42)}=`,
    `!${"a".repeat(250)}:example.com`,
  ];
  for (const id of invalid) {
    test(`rejects ${JSON.stringify(id.length > 50 ? `${id.slice(0, 20)}… (${id.length})` : id)}`, () => {
      expect(parseRoomId(id).ok).toBe(false);
    });
  }
});

describe("event IDs (appendices: Event IDs; rooms v1, v3, v4)", () => {
  test("v1/v2: server-chosen with a domain", () => {
    expect(parseEventId("$17953915590EvLdo:127.0.0.1:8448", "server-chosen")).toEqual({
      ok: true,
      value: { kind: "server", opaqueId: "17953915590EvLdo", serverName: "127.0.0.1:8448" },
    });
    expect(isValidEventId(`$${HASH}`, "server-chosen")).toBe(false);
    expect(isValidEventId("$:example.com", "server-chosen")).toBe(false);
    expect(isValidEventId("$abc:", "server-chosen")).toBe(false);
  });

  test("v3: standard base64 (may hold + and /)", () => {
    const v3 = "$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk";
    expect(isValidEventId(v3, "reference-hash-base64")).toBe(true);
    expect(isValidEventId(v3, "reference-hash-urlsafe")).toBe(false);
    expect(isValidEventId(`$${HASH}`, "reference-hash-base64")).toBe(false); // has '-' and '_'
  });

  test("v4+: URL-safe base64", () => {
    expect(parseEventId(`$${HASH}`, "reference-hash-urlsafe")).toEqual({ ok: true, value: { kind: "hash", hash: HASH } });
    expect(isValidEventId("$abc:example.com", "reference-hash-urlsafe")).toBe(false);
  });

  test("without a format, any of the three", () => {
    expect(isValidEventId("$abc:example.com")).toBe(true);
    expect(isValidEventId(`$${HASH}`)).toBe(true);
    expect(isValidEventId("$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk")).toBe(true);
  });

  const invalid = [
    "",
    "abc",
    `${HASH}`,
    "!abc:example.com",
    "$",
    `$${HASH}=`,
    `$${HASH.slice(0, 42)}`,
    `$${HASH.slice(0, 42)}*`,
    `$${"a".repeat(250)}:example.com`,
  ];
  for (const id of invalid) {
    test(`rejects ${JSON.stringify(id.length > 50 ? `${id.slice(0, 20)}… (${id.length})` : id)}`, () => {
      expect(parseEventId(id).ok).toBe(false);
    });
  }
});

describe("room aliases (appendices: Room Aliases)", () => {
  const valid = ["#room:example.com", "#fixture-v1-1795391557:127.0.0.1:8448", "#Ünïcødé room!:example.com", "#a:[::1]"];
  for (const alias of valid) {
    test(`accepts ${alias}`, () => expect(isValidRoomAlias(alias)).toBe(true));
  }
  test("parses localpart and server name", () => {
    expect(parseRoomAlias("#room:example.com:8448")).toEqual({
      ok: true,
      value: { localpart: "room", serverName: "example.com:8448" },
    });
  });
  const invalid = [
    "",
    "room:example.com",
    "@room:example.com",
    "#room",
    "#:example.com",
    "#room:",
    "#ro\u0000om:example.com",
    "#room:bad_server",
    `#${"a".repeat(243)}:example.com`,
  ];
  for (const alias of invalid) {
    test(`rejects ${JSON.stringify(alias.length > 50 ? `${alias.length}-char alias` : alias)}`, () => {
      expect(parseRoomAlias(alias).ok).toBe(false);
    });
  }
  test("255 bytes is the limit", () => {
    expect(isValidRoomAlias(`#${"a".repeat(242)}:example.com`)).toBe(true);
  });
});

describe("serverNameOf", () => {
  test("takes everything after the first ':'", () => {
    expect(serverNameOf("@a:example.com:8448")).toBe("example.com:8448");
    expect(serverNameOf("$abc:[::1]")).toBe("[::1]");
    expect(serverNameOf(`$${HASH}`)).toBeUndefined();
  });
});
