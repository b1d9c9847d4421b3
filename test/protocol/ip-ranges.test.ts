// Address ranges as the config names them (CIDR): parsed, refused when malformed, matched per family.
import { describe, expect, test } from "bun:test";
import { inRange, parseAddressRange } from "../../src/protocol/ip-ranges";
import { resolveConfig, ConfigError } from "../../src/config/loader";

const range = (text: string) => parseAddressRange(text)!;

describe("address ranges", () => {
  test("IPv4: prefixes of every length, a bare address for itself", () => {
    expect(inRange("10.1.2.3", range("10.0.0.0/8"))).toBe(true);
    expect(inRange("11.1.2.3", range("10.0.0.0/8"))).toBe(false);
    expect(inRange("172.31.255.255", range("172.16.0.0/12"))).toBe(true);
    expect(inRange("172.32.0.0", range("172.16.0.0/12"))).toBe(false);
    expect(inRange("127.0.0.1", range("127.0.0.1"))).toBe(true);
    expect(inRange("127.0.0.2", range("127.0.0.1/32"))).toBe(false);
    expect(inRange("8.8.8.8", range("0.0.0.0/0"))).toBe(true);
  });

  test("IPv6, and no match across families", () => {
    expect(inRange("fd00::1", range("fc00::/7"))).toBe(true);
    expect(inRange("fe80::1", range("fc00::/7"))).toBe(false);
    expect(inRange("::1", range("::1/128"))).toBe(true);
    expect(inRange("2001:db8:0:1::5", range("2001:db8::/48"))).toBe(true);
    expect(inRange("2001:db8:1::5", range("2001:db8::/48"))).toBe(false);
    expect(inRange("127.0.0.1", range("::1/128"))).toBe(false);
    expect(inRange("::1", range("127.0.0.0/8"))).toBe(false);
  });

  test("malformed ranges are refused, and by the config loader with the key's name", () => {
    for (const bad of ["", "10.0.0.0/33", "::/129", "10.0.0/8", "example.org/8", "10.0.0.0/8/1", "10.0.0.0/x", "10.0.0.0/-1"]) expect([bad, parseAddressRange(bad)]).toEqual([bad, undefined]);
    expect(() => resolveConfig({ server_name: "example.org", media: { url_preview_ip_range_whitelist: ["10.0.0.0/33"] } })).toThrow(ConfigError);
    expect(() => resolveConfig({ server_name: "example.org", media: { url_preview_ip_range_whitelist: ["10.0.0.0/33"] } })).toThrow("media.url_preview_ip_range_whitelist");
    expect(resolveConfig({ server_name: "example.org", media: { url_preview_ip_range_whitelist: ["10.0.0.0/8", "fc00::/7"] } }).media.url_preview_ip_range_whitelist).toEqual(["10.0.0.0/8", "fc00::/7"]);
  });
});
