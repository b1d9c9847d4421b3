// `portier register-user`: creates a local user straight through the account services, without
// the HTTP API (so it works whether or not registration is open, and whether or not the server runs).
import { buildServer } from "./app";
import type { Config } from "./config/schema";
import { Tokens, resolve } from "./di/tokens";
import type { Logger } from "./services/runtime";

export interface RegisterUserOptions {
  user: string;
  password: string;
  admin: boolean;
}

/** Returns the new user's ID; throws the MatrixError of a taken or invalid name. */
export async function registerUser(config: Readonly<Config>, options: RegisterUserOptions, logger?: Logger): Promise<string> {
  const server = await buildServer(config, logger ? { logger } : {});
  try {
    const localpart = options.user.startsWith("@") ? options.user.slice(1, options.user.includes(":") ? options.user.indexOf(":") : undefined) : options.user;
    const result = await resolve(server.container, Tokens.Accounts).register({ username: localpart, password: options.password, admin: options.admin, inhibitLogin: true });
    return result.userId;
  } finally {
    await server.stop();
  }
}
