// The optional login sections: cas and registration.recaptcha are off unless written, take their
// defaults when given by environment variables (as sytest's runner does), and show in the sample
// config commented out, so that the sample still loads.
import { expect, test } from "bun:test";
import { configFromEnv, parseConfigYaml, resolveConfig } from "../../src/config/loader";
import { sampleConfig } from "../../src/config/sample";

test("off by default", () => {
  const config = resolveConfig({});
  expect(config.cas).toBeUndefined();
  expect(config.registration.recaptcha).toBeUndefined();
});

test("from environment variables, with defaults", () => {
  const config = resolveConfig(configFromEnv({
    PORTIER_CAS__SERVER_URL: "https://127.0.0.1:19099/cas",
    PORTIER_CAS__VERIFY_TLS: "false",
    PORTIER_REGISTRATION__RECAPTCHA__PUBLIC_KEY: "pub",
    PORTIER_REGISTRATION__RECAPTCHA__PRIVATE_KEY: "priv",
    PORTIER_REGISTRATION__RECAPTCHA__REQUIRED: "false",
  }));
  expect(config.cas).toEqual({ server_url: "https://127.0.0.1:19099/cas", verify_tls: false, required_attributes: {} });
  expect(config.registration.recaptcha).toEqual({ public_key: "pub", private_key: "priv", siteverify_api: "https://www.recaptcha.net/recaptcha/api/siteverify", required: false, verify_tls: true });
});

test("a recaptcha section without its keys is refused", () => {
  expect(() => resolveConfig({ registration: { recaptcha: { public_key: "pub" } } })).toThrow(/private_key/);
});

test("the sample shows both sections commented out and still loads", () => {
  const sample = sampleConfig();
  expect(sample).toContain("\n#cas:\n  # The CAS server's base URL");
  expect(sample).toContain("\n  #recaptcha:\n");
  expect(sample).toContain("    #public_key:\n");
  const config = resolveConfig(parseConfigYaml(sample, "sample"));
  expect(config.cas).toBeUndefined();
  expect(config.registration.recaptcha).toBeUndefined();
});
