// The login part of the composition root that depends on configuration: one-use login tokens,
// the CAS client (with `cas` configured), the reCAPTCHA verifier (with registration.recaptcha) and
// email validation (with `email`).
import type { DependencyContainer } from "tsyringe";
import type { Config } from "../config/schema";
import { CasClient } from "../services/accounts/cas";
import { LoginTokens } from "../services/accounts/login-tokens";
import { RecaptchaVerifier } from "../services/accounts/recaptcha";
import { EmailValidation } from "../services/identity/email-validation";
import { smtpMailer, type Mailer } from "../services/identity/smtp";
import type { Clock, Logger } from "../services/runtime";
import { registerFactory } from "./composition";
import { token } from "./tokens";

export interface ExternalLogins {
  readonly loginTokens: LoginTokens;
  /** Single sign-on through CAS; absent when not configured. */
  readonly cas?: CasClient;
  /** The m.login.recaptcha registration stage; absent when not configured. */
  readonly recaptcha?: RecaptchaVerifier;
  /** Every registration flow starts with m.login.recaptcha. */
  readonly recaptchaRequired: boolean;
  /** Email addresses validated by this server (m.login.email.identity, /account/3pid/add); absent when not configured. */
  readonly emailValidation?: EmailValidation;
}

export const LoginServiceTokens = { ExternalLogins: token<ExternalLogins>("ExternalLogins") } as const;

export function registerLoginServices(container: DependencyContainer, { config, clock, logger, mailer }: { config: Readonly<Config>; clock: Clock; logger: Logger; mailer?: Mailer }): void {
  registerFactory(container, LoginServiceTokens.ExternalLogins, () => {
    const recaptcha = config.registration.recaptcha;
    const email = config.email;
    return {
      loginTokens: new LoginTokens(clock),
      cas: config.cas ? new CasClient(config.cas) : undefined,
      recaptcha: recaptcha ? new RecaptchaVerifier(recaptcha) : undefined,
      recaptchaRequired: recaptcha?.required === true,
      emailValidation: email
        ? new EmailValidation({
            mailer: mailer ?? smtpMailer(email, config.server_name.replace(/:\d+$/, "")),
            from: email.notif_from ?? `Portier <noreply@${config.server_name.replace(/:\d+$/, "")}>`,
            serverName: config.server_name,
            clock,
            logger,
          })
        : undefined,
    };
  });
}
