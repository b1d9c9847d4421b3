// knock-by-reason: a small drop-in knock policy, to copy next to the Portier binary and adapt.
// It reads the reason a knocker gives:
//   - a reason holding the passphrase is accepted (the knocker is invited at once);
//   - a reason holding a blocked word is refused, with a message the knocker sees;
//   - a reason shorter than min_reason_length is refused (no reason counts as "");
//   - anything else is allowed: the knock waits for the room's moderators.
//
// A drop-in file has no Portier source beside it, so it may only `import type` from the plugin API
// (types vanish when the file is loaded) and writes decisions out as plain values. See README.md.
import type { Decision, PortierPlugin } from "../../src/extensions";

interface Config {
  passphrase?: string;
  blocked_words?: string[];
  min_reason_length?: number;
}

const plugin: PortierPlugin<Config> = {
  name: "knock-by-reason",
  version: "1.0.0",
  // Checked by Portier at start and on reload; a bad config names this plugin and the key.
  configSchema: {
    type: "object",
    additionalProperties: false,
    properties: {
      passphrase: { type: "string", minLength: 1 },
      blocked_words: { type: "array", items: { type: "string", minLength: 1 } },
      min_reason_length: { type: "integer", minimum: 0 },
    },
  },
  register(host, config) {
    const passphrase = config.passphrase?.toLowerCase();
    const blocked = (config.blocked_words ?? []).map((w) => w.toLowerCase());
    const minLength = config.min_reason_length ?? 0;
    host.addKnockPolicy({
      decideKnock(knock): Decision {
        const reason = (knock.reason ?? "").trim().toLowerCase();
        if (passphrase !== undefined && reason.includes(passphrase)) return { kind: "accept" };
        if (blocked.some((word) => reason.includes(word))) return { kind: "deny", errcode: "M_FORBIDDEN", message: "Your reason uses words this server does not accept" };
        if (reason.length < minLength) return { kind: "deny", errcode: "M_FORBIDDEN", message: `Please give a reason of at least ${minLength} characters` };
        return { kind: "allow" };
      },
      onKnockResolved(resolved) {
        host.logger.log("info", "knock resolved", { room_id: resolved.roomId, user_id: resolved.userId, outcome: resolved.outcome, by: resolved.by });
      },
    });
  },
};

export default plugin;
