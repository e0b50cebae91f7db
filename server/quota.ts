/**
 * Per-tenant quotas: the most a tenant's services may ask for together, in CPU, memory and
 * instances (replicas × resources, as asked: what the tenant could make the fleet run, not what
 * happens to run now). They bound what one tenant can queue for the auction, so that a hostile or
 * careless tenant cannot fill the fleet or the queue. A tenant without a quota of its own gets the
 * server's default. Lowering a quota below what is in use refuses further creates; nothing that
 * exists is removed.
 */
import type { GetQuotaRequest, SetQuotaRequest } from '../gen/podium/v1/pod_api';
import type { Quota } from '../gen/podium/v1/resources';
import { isTenantName, TENANT_NAME_RULE, type Role } from '../certs';
import { PodiumError, type QuotaViolation } from './errors';
import type { QuotaLimits, Repositories, ServiceSpec, Storage } from './storage';
import { unary, type UnaryDeps } from './unary-handler';
import { validateQuota } from './validation';

export interface QuotaDeps extends UnaryDeps {
  storage: Storage;
  /** The quota of a tenant that has none of its own. */
  defaultQuota: QuotaLimits;
}

/** The quota that applies to a tenant, and whether it is the default. */
export async function quotaOf(r: Repositories, tenant: string, defaults: QuotaLimits): Promise<{ limits: QuotaLimits; isDefault: boolean }> {
  const own = await r.quotas.get(tenant);
  return own ? { limits: own, isDefault: false } : { limits: defaults, isDefault: true };
}

/**
 * Throws RESOURCE_EXHAUSTED, naming every quota it would exceed, when adding `spec` to what the
 * tenant's services already ask for goes over the tenant's quota. Must run inside the unit of work
 * that inserts the service, after it took the tenant's lock (`quota:<tenant>`), so that two
 * creates cannot both fit in the same headroom.
 */
export async function assertWithinQuota(r: Repositories, tenant: string, spec: ServiceSpec, defaults: QuotaLimits): Promise<void> {
  const { limits } = await quotaOf(r, tenant, defaults);
  const used = await r.services.tenantUsage(tenant);
  const asked: QuotaLimits = {
    instances: spec.replicas,
    cpuMillis: spec.replicas * spec.resources.cpuMillis,
    memoryMib: spec.replicas * spec.resources.memoryMib,
  };
  const violations: QuotaViolation[] = [];
  const dims: Array<[keyof QuotaLimits, string, string]> = [
    ['instances', 'instances', ''],
    ['cpuMillis', 'cpuMillis', ' mCPU'],
    ['memoryMib', 'memoryMib', ' MiB'],
  ];
  for (const [key, name, unit] of dims) {
    const total = used[key] + asked[key];
    if (total > limits[key]) {
      violations.push({
        subject: `tenant:${tenant}/${name}`,
        description: `${name} would be ${total}${unit}, over the quota of ${limits[key]}${unit} (${used[key]}${unit} in use)`,
      });
    }
  }
  if (violations.length > 0) {
    throw PodiumError.quotaExceeded(`quota exceeded for tenant "${tenant}": ${violations.map((v) => v.description).join('; ')}`, violations);
  }
}

const READERS: readonly Role[] = ['gateway', 'operator'];
const WRITERS: readonly Role[] = ['operator'];

export function quotaHandlers(deps: QuotaDeps) {
  const view = (tenant: string): Promise<Quota> =>
    deps.storage.read(async (r) => {
      const { limits, isDefault } = await quotaOf(r, tenant, deps.defaultQuota);
      return { tenant, ...limits, used: await r.services.tenantUsage(tenant), isDefault };
    });
  return {
    /** Roles: gateway (a customer its own tenant only; an admin any), operator. */
    getQuota: unary<GetQuotaRequest, Quota>(deps, READERS, async (req, tenant, caller) => {
      const wanted = req.tenant || tenant;
      // A customer asking for another tenant's quota learns nothing: NOT_FOUND, as for any resource.
      if (caller.role === 'customer' && wanted !== tenant) throw PodiumError.notFound(`tenant "${wanted}"`);
      checkTenantName(wanted);
      return view(wanted);
    }),
    /** Roles: operator. */
    setQuota: unary<SetQuotaRequest, Quota>(deps, WRITERS, async (req) => {
      checkTenantName(req.tenant);
      const limits = validateQuota(req.quota);
      await deps.storage.transaction(async (u) => {
        await u.quotas.set(req.tenant, limits, Date.now());
        u.emit({ tenant: req.tenant, type: 'quota.set', message: `cpu ${limits.cpuMillis} mCPU, memory ${limits.memoryMib} MiB, ${limits.instances} instances` });
      });
      deps.log.info({ tenant: req.tenant, ...limits }, 'quota set');
      return view(req.tenant);
    }),
  };
}

function checkTenantName(tenant: string): void {
  if (!isTenantName(tenant)) throw PodiumError.invalid('tenant', `must be ${TENANT_NAME_RULE}`);
}
