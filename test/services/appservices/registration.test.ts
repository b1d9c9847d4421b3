// Application service registration files: a good one parsed completely, each bad field refused with
// a message naming the file and the field, and a bad file stopping the server's start.
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadRegistrations, parseRegistration, RegistrationError } from "../../../src/services/appservices/registration";
import { resolveConfig } from "../../../src/config/loader";
import { buildServer } from "../../../src/app";
import { silentLogger, tempDir } from "../../helpers/server";

const GOOD = `
id: irc-bridge
url: "http://127.0.0.1:9999/"
as_token: astoken
hs_token: hstoken
sender_localpart: ircbot
namespaces:
  users:
    - regex: "@_irc_.*:example.org"
      exclusive: true
  aliases:
    - regex: "#_irc_.*"
      exclusive: false
  rooms: []
rate_limited: false
protocols: [irc]
`;

describe("application service registrations", () => {
  test("a complete registration", () => {
    const r = parseRegistration(GOOD, "irc.yaml");
    expect(r.id).toBe("irc-bridge");
    expect(r.url).toBe("http://127.0.0.1:9999");
    expect(r.asToken).toBe("astoken");
    expect(r.hsToken).toBe("hstoken");
    expect(r.senderLocalpart).toBe("ircbot");
    expect(r.rateLimited).toBe(false);
    expect(r.protocols).toEqual(["irc"]);
    expect(r.namespaces.users[0]!.exclusive).toBe(true);
    // Anchored at the start as Python's re.match: a user ID merely containing the pattern does not match.
    expect(r.namespaces.users[0]!.pattern.test("@_irc_bob:example.org")).toBe(true);
    expect(r.namespaces.users[0]!.pattern.test("@x@_irc_bob:example.org")).toBe(false);
    expect(r.namespaces.rooms).toEqual([]);
  });

  test("url may be null; rate_limited defaults to true and protocols to none", () => {
    const r = parseRegistration("id: a\nurl: null\nas_token: x\nhs_token: y\nsender_localpart: bot\nnamespaces: {}\n", "a.yaml");
    expect(r.url).toBeNull();
    expect(r.rateLimited).toBe(true);
    expect(r.protocols).toEqual([]);
  });

  const bad: [string, string, RegExp][] = [
    ["missing as_token", GOOD.replace("as_token: astoken\n", ""), /bad\.yaml: 'as_token' is required/],
    ["missing url", GOOD.replace('url: "http://127.0.0.1:9999/"\n', ""), /bad\.yaml: 'url' is required/],
    ["url not a URL", GOOD.replace('"http://127.0.0.1:9999/"', "not-a-url"), /bad\.yaml: 'url' is not a URL/],
    ["regex invalid", GOOD.replace('"@_irc_.*:example.org"', '"@_irc_(.*"'), /bad\.yaml: 'namespaces\.users\[0\]\.regex' is not a valid regular expression/],
    ["exclusive missing", GOOD.replace("      exclusive: true\n", ""), /bad\.yaml: 'namespaces\.users\[0\]\.exclusive' must be true or false/],
    ["namespaces.users not a list", GOOD.replace(/  users:\n(.*\n){2}/, "  users: yes\n"), /bad\.yaml: 'namespaces\.users' must be a list/],
    ["rate_limited not boolean", GOOD.replace("rate_limited: false", "rate_limited: sometimes"), /bad\.yaml: 'rate_limited' must be true or false/],
    ["protocols not strings", GOOD.replace("protocols: [irc]", "protocols: [1, {a: b}]"), /bad\.yaml: 'protocols' must be a list of strings/],
    ["not YAML", "id: [unclosed", /bad\.yaml: not valid YAML/],
    ["not a mapping", "- a\n- b\n", /bad\.yaml: the top level must be a mapping/],
  ];
  test.each(bad)("refused: %s", (_name, text, message) => {
    expect(() => parseRegistration(text, "bad.yaml")).toThrow(message);
  });

  test("ids and as_tokens must be unique across files; a missing file is named", () => {
    const dir = tempDir();
    const a = join(dir, "a.yaml");
    const b = join(dir, "b.yaml");
    writeFileSync(a, GOOD);
    writeFileSync(b, GOOD.replace("id: irc-bridge", "id: other"));
    expect(() => loadRegistrations([a, b])).toThrow(/b\.yaml: 'as_token' is also the as_token of .*a\.yaml/);
    writeFileSync(b, GOOD.replace("as_token: astoken", "as_token: other"));
    expect(() => loadRegistrations([a, b])).toThrow(/b\.yaml: 'id' irc-bridge is also the id of/);
    expect(() => loadRegistrations([join(dir, "missing.yaml")])).toThrow(RegistrationError);
    expect(() => loadRegistrations([join(dir, "missing.yaml")])).toThrow(/cannot read application service registration .*missing\.yaml/);
  });

  test("a bad file stops the server's start with a config error naming it (under either config key)", async () => {
    const dir = tempDir();
    const file = join(dir, "bridge.yaml");
    writeFileSync(file, GOOD.replace("hs_token: hstoken\n", ""));
    for (const key of ["app_services", "app_service_config_files"]) {
      const config = resolveConfig({ bind: "127.0.0.1:0", data_dir: tempDir(), plugins: [], federation: { enabled: false }, [key]: [file] });
      const error = await buildServer(config, { logger: silentLogger }).then(() => undefined, (e: Error) => e);
      expect(error?.name).toBe("ConfigError");
      expect(error?.message).toContain(`${file}: 'hs_token' is required`);
    }
  });
});
