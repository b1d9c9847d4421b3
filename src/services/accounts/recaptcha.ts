// The m.login.recaptcha stage of registration (client-server-api "Google ReCaptcha"): the client
// shows Google's captcha with the public key from the stage's params and sends the response token;
// the server checks it with Google's siteverify API (a form POST of secret, response and the
// client's address; the answer's `success`), as Synapse does.
import { MatrixError } from "../../protocol/errors";

export interface RecaptchaConfig {
  readonly public_key: string;
  readonly private_key: string;
  readonly siteverify_api: string;
  readonly verify_tls: boolean;
}

/** A siteverify request must not hold up a registration for long. */
const SITEVERIFY_TIMEOUT_MS = 10_000;

export class RecaptchaVerifier {
  constructor(private readonly config: RecaptchaConfig, private readonly fetchFn: typeof fetch = fetch) {}

  get publicKey(): string {
    return this.config.public_key;
  }

  /**
   * Resolves when the captcha service accepts the response token; otherwise 401 M_UNAUTHORIZED
   * (the stage failed and may be retried), or 502 when the service could not be asked.
   */
  async verify(response: unknown, remoteIp: string | undefined): Promise<void> {
    if (typeof response !== "string" || response === "") throw new MatrixError("M_MISSING_PARAM", "Missing parameter: response (the captcha's response token)", 400);
    const form = new URLSearchParams({ secret: this.config.private_key, response });
    if (remoteIp) form.set("remoteip", remoteIp);
    let answer: unknown;
    try {
      const res = await this.fetchFn(this.config.siteverify_api, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: form.toString(),
        redirect: "manual",
        signal: AbortSignal.timeout(SITEVERIFY_TIMEOUT_MS),
        ...(this.config.verify_tls ? {} : { tls: { rejectUnauthorized: false } }),
      } as RequestInit);
      if (!res.ok) throw new Error(`siteverify answered ${res.status}`);
      answer = await res.json();
    } catch (error) {
      throw new MatrixError("M_UNKNOWN", `The captcha could not be checked: ${(error as Error).message}`, 502);
    }
    if ((answer as { success?: unknown } | null)?.success !== true) throw new MatrixError("M_UNAUTHORIZED", "Captcha is not correct", 401);
  }
}
