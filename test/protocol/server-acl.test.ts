// Server ACLs (m.room.server_acl): the schema's five rules, its examples, and malformed content.
import { describe, expect, test } from "bun:test";
import { globMatches, hostOf, serverAllowedByAcl } from "../../src/protocol/server-acl";

describe("serverAllowedByAcl", () => {
  test("1. no ACL event in the room state: every server is allowed", () => {
    expect(serverAllowedByAcl(undefined, "evil.com")).toBe(true);
    expect(serverAllowedByAcl(undefined, "1.2.3.4")).toBe(true);
  });

  test("the port is not considered: evil.com, evil.com:8448 and evil.com:1234 all match `evil.com` (the schema's example)", () => {
    const acl = { allow: ["*"], deny: ["evil.com"] };
    for (const server of ["evil.com", "evil.com:8448", "evil.com:1234"]) expect(serverAllowedByAcl(acl, server)).toBe(false);
    expect(serverAllowedByAcl(acl, "good.com:8448")).toBe(true);
    // ...and a pattern with a port never matches, since the port is gone before matching.
    expect(serverAllowedByAcl({ allow: ["good.com:8448"] }, "good.com:8448")).toBe(false);
  });

  test("a common allow rule ['*'] keeps the deny list usable", () => {
    const acl = { allow: ["*"], deny: ["*.evil.com", "evil.com"] };
    expect(serverAllowedByAcl(acl, "matrix.org")).toBe(true);
    expect(serverAllowedByAcl(acl, "sub.evil.com")).toBe(false);
    expect(serverAllowedByAcl(acl, "a.b.evil.com:443")).toBe(false);
    expect(serverAllowedByAcl(acl, "notevil.com")).toBe(true);
  });

  test("5. without an allow rule every server is denied, the sender's own too (the schema's warning)", () => {
    expect(serverAllowedByAcl({}, "matrix.org")).toBe(false);
    expect(serverAllowedByAcl({ deny: [] }, "matrix.org")).toBe(false);
    expect(serverAllowedByAcl({ allow: [] }, "matrix.org")).toBe(false);
  });

  test("4. only servers matching an allow entry are allowed", () => {
    const acl = { allow: ["*.example.org", "matrix.org"] };
    expect(serverAllowedByAcl(acl, "hs.example.org")).toBe(true);
    expect(serverAllowedByAcl(acl, "matrix.org")).toBe(true);
    expect(serverAllowedByAcl(acl, "example.org")).toBe(false);
    expect(serverAllowedByAcl(acl, "matrix.org.evil.com")).toBe(false);
  });

  test("3. deny wins over allow", () => {
    expect(serverAllowedByAcl({ allow: ["evil.com"], deny: ["evil.com"] }, "evil.com")).toBe(false);
    expect(serverAllowedByAcl({ allow: ["*"], deny: ["*"] }, "good.com")).toBe(false);
  });

  test("matching is case-insensitive, on both sides", () => {
    expect(serverAllowedByAcl({ allow: ["*"], deny: ["EVIL.com"] }, "evil.COM")).toBe(false);
    expect(serverAllowedByAcl({ allow: ["Good.Example"] }, "GOOD.example:8448")).toBe(true);
  });

  test("2. IP literals are denied only when allow_ip_literals is false", () => {
    const open = { allow: ["*"] };
    const closed = { allow: ["*"], allow_ip_literals: false };
    for (const ip of ["1.2.3.4", "1.2.3.4:8448", "[::1]", "[::1]:8448", "[2001:db8::7]"]) {
      expect(serverAllowedByAcl(open, ip)).toBe(true);
      expect(serverAllowedByAcl({ ...open, allow_ip_literals: true }, ip)).toBe(true);
      expect(serverAllowedByAcl(closed, ip)).toBe(false);
    }
    // Names that only look like addresses are hostnames.
    expect(serverAllowedByAcl(closed, "1.2.3.4.example.org")).toBe(true);
    expect(serverAllowedByAcl(closed, "300.1.1.1")).toBe(true);
    // An allowed IP literal still goes through deny and allow.
    expect(serverAllowedByAcl({ allow: ["*"], deny: ["1.2.3.*"] }, "1.2.3.4:8448")).toBe(false);
    expect(serverAllowedByAcl({ allow: ["[::1]"] }, "[::1]:8448")).toBe(true);
  });

  test("malformed content is read field by field, leniently", () => {
    // allow_ip_literals that is not a boolean counts as absent (true).
    for (const value of ["false", 0, null, [], {}]) expect(serverAllowedByAcl({ allow: ["*"], allow_ip_literals: value }, "1.2.3.4")).toBe(true);
    // A deny that is not a list denies nothing; an allow that is not a list allows nothing.
    expect(serverAllowedByAcl({ allow: ["*"], deny: "evil.com" }, "evil.com")).toBe(true);
    expect(serverAllowedByAcl({ allow: ["*"], deny: { "evil.com": true } }, "evil.com")).toBe(true);
    expect(serverAllowedByAcl({ allow: "*" }, "good.com")).toBe(false);
    // Entries that are not strings match nothing; the string entries still count.
    expect(serverAllowedByAcl({ allow: [42, null, ["*"], "good.com"] }, "good.com")).toBe(true);
    expect(serverAllowedByAcl({ allow: [42, null, ["*"]] }, "good.com")).toBe(false);
    expect(serverAllowedByAcl({ allow: ["*"], deny: [7, "evil.com"] }, "evil.com")).toBe(false);
    // Content that is not an object: an ACL event without rules, which denies everyone.
    for (const content of [null, "x", 5, ["*"]]) expect(serverAllowedByAcl(content, "good.com")).toBe(false);
  });
});

describe("globMatches", () => {
  test("* matches any run of characters, also none; ? exactly one", () => {
    expect(globMatches("*", "")).toBe(true);
    expect(globMatches("*", "anything.at.all")).toBe(true);
    expect(globMatches("a*c", "ac")).toBe(true);
    expect(globMatches("a*c", "abbbc")).toBe(true);
    expect(globMatches("a*c", "abbbd")).toBe(false);
    expect(globMatches("a?c", "abc")).toBe(true);
    expect(globMatches("a?c", "ac")).toBe(false);
    expect(globMatches("a?c", "abbc")).toBe(false);
    expect(globMatches("??", "ab")).toBe(true);
    expect(globMatches("*.b*.c", "x.bb.y.b.c")).toBe(true);
    expect(globMatches("?*", "")).toBe(false);
  });

  test("the whole text must match, and other characters are literal (no regex meaning)", () => {
    expect(globMatches("evil.com", "evil.com.au")).toBe(false);
    expect(globMatches("evil.com", "xevil.com")).toBe(false);
    expect(globMatches("evil.com", "evilxcom")).toBe(false);
    expect(globMatches("[a-z]+", "a")).toBe(false);
    expect(globMatches("[a-z]+", "[a-z]+")).toBe(true);
    expect(globMatches("a|b", "a")).toBe(false);
  });

  test("? matches one character outside the BMP", () => {
    expect(globMatches("a?b", "a😀b")).toBe(true);
  });

  test("many stars against a long non-matching text finish quickly", () => {
    const started = performance.now();
    expect(globMatches("*a*a*a*a*a*a*a*a*a*a*a*a*b", "a".repeat(5000))).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe("hostOf", () => {
  test("drops the port; an IPv6 literal keeps its brackets", () => {
    expect(hostOf("example.org")).toBe("example.org");
    expect(hostOf("example.org:8448")).toBe("example.org");
    expect(hostOf("1.2.3.4:80")).toBe("1.2.3.4");
    expect(hostOf("[::1]")).toBe("[::1]");
    expect(hostOf("[::1]:8448")).toBe("[::1]");
  });
});
