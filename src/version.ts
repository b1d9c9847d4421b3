// Portier's own version, reported by `portier version` and /_matrix/federation/v1/version.
import pkg from "../package.json" with { type: "json" };

export const PORTIER_VERSION: string = pkg.version;
