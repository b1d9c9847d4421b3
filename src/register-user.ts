// `portier register-user`: creates a local user straight through the account services, without
// the HTTP API (so it works whether or not registration is open, and whether or not the server runs).
// It opens only the stores (no signing key, no room services) and closes the database when done.
import { mkdirSync } from "node:fs";
import { databaseSettings, openServerStores } from "./app";
import type { Config } from "./config/schema";
import { AccountService } from "./services/accounts/account-service";
import { systemClock, type Logger } from "./services/runtime";

export interface RegisterUserOptions {
  user: string;
  password: string;
  admin: boolean;
}

/** Returns the new user's ID; throws the MatrixError of a taken or invalid name. */
export async function registerUser(config: Readonly<Config>, options: RegisterUserOptions, logger?: Logger): Promise<string> {
  const settings = databaseSettings(config);
  if (settings.driver !== "postgres" && settings.path !== ":memory:") mkdirSync(config.data_dir, { recursive: true });
  const stores = await openServerStores(config);
  try {
    const accounts = new AccountService(stores.accounts, config.server_name, systemClock, stores.profiles);
    const localpart = options.user.startsWith("@") ? options.user.slice(1, options.user.includes(":") ? options.user.indexOf(":") : undefined) : options.user;
    const result = await accounts.register({ username: localpart, password: options.password, admin: options.admin, inhibitLogin: true });
    logger?.log("info", "registered a user", { user_id: result.userId, admin: options.admin });
    return result.userId;
  } finally {
    await stores.db.close();
  }
}
