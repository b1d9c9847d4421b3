// Plugin administration under /_portier/admin/v1 (server admins only):
//   GET  /plugins         the loaded plugins in order: name, version, source, fail mode, timeout, and
//                         per plugin the calls, denials, errors and p99 latency since start
//   POST /plugins/reload  loads the plugin files and their config again (as SIGHUP does); when any
//                         fails, the running plugins stay and the answer (400 M_UNKNOWN) says why
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { PluginLoader } from "../../services/plugins/loader";
import type { PolicySet } from "../../services/plugins/policies";
import { requireUser } from "../middleware/auth";
import { ADMIN_V1 } from "./knocks";

function p99(latencies: readonly number[]): number {
  if (latencies.length === 0) return 0;
  const sorted = [...latencies].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))]! * 1000) / 1000;
}

export function pluginAdminRoutes({ accounts, loader, policies, reload }: { accounts: AccountService; loader: PluginLoader; policies: PolicySet; reload: () => Promise<void> }) {
  const requireAdmin = async (request: Request) => {
    const me = await requireUser(accounts, request);
    if (!(await accounts.isAdmin(me.userId))) throw new MatrixError("M_FORBIDDEN", "Only server admins may manage plugins");
  };
  return new Elysia({ name: "admin-plugins" })
    .get(`${ADMIN_V1}/plugins`, async ({ request }) => {
      await requireAdmin(request);
      return {
        plugins: loader.plugins.map((p) => {
          const stats = policies.stats.get(p.name) ?? { calls: 0, denials: 0, errors: 0, latencies: [] };
          return { name: p.name, version: p.version, source: p.source, fail_mode: p.failMode, timeout_ms: p.timeoutMs, calls: stats.calls, denials: stats.denials, errors: stats.errors, p99_ms: p99(stats.latencies) };
        }),
      };
    })
    .post(`${ADMIN_V1}/plugins/reload`, async ({ request }) => {
      await requireAdmin(request);
      try {
        await reload();
      } catch (error) {
        throw new MatrixError("M_UNKNOWN", `Reload failed; the running plugins stay: ${(error as Error)?.message ?? String(error)}`, 400);
      }
      return { plugins: loader.plugins.map((p) => ({ name: p.name, version: p.version })) };
    });
}
