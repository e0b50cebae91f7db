/**
 * The fleet as the auction sees it, kept in memory: each host's record (capacity, labels, state,
 * AppArmor) and what is placed on it. A round used to read every host and sum every placed
 * instance, twice; now it reads only the hosts that changed since the last round.
 *
 * What changes a host is always committed with an event naming it (host.up, host.down,
 * instance.lost, instance.deleted, instance.failed, instance.requeued …), from this process or
 * another (a standby deleting a service, the CLI revoking a host): the event feed marks the host,
 * and the next read takes its row and its allocation from the store again. The one change that
 * cannot wait for its event is an award this process made, since the next round must not give the
 * same capacity away again: `reserved` counts it at once. So between reads the view can only
 * over-count what a host holds (capacity freed elsewhere and not yet heard of), never under-count
 * it, and over-commitment stays impossible. Whether a host has a session is asked of the sessions
 * each time, never cached.
 */
import type { Resources } from '../gen/podium/v1/resources';
import { AppArmorMode } from '../gen/podium/v1/resources';
import type { HostView } from './auction';
import type { HostRecord, Storage } from './storage';
import type { HostAllocation } from './storage/instance-repository';

/** Events that name a host yet change neither its record nor what it holds. */
const NO_CHANGE = new Set(['instance.running', 'instance.starting', 'certificate.issued', 'instance.awarded']);

class HostEntry implements HostView {
  id: string;
  pod = '';
  provider = '';
  labels: Record<string, string> = {};
  capacity: Resources = { cpuMillis: 0, memoryMib: 0 };
  allocated: Resources = { cpuMillis: 0, memoryMib: 0 };
  acceptsWork = false;
  haGroups = new Set<string>();
  private up = false;

  constructor(
    record: HostRecord,
    private readonly connected: (hostId: string) => boolean,
  ) {
    this.id = record.id;
    this.update(record, undefined);
  }

  get alive(): boolean {
    return this.up && this.connected(this.id);
  }

  update(h: HostRecord, a: HostAllocation | undefined): void {
    this.pod = h.pod;
    this.provider = h.provider;
    this.labels = h.labels;
    this.capacity = h.capacity;
    this.up = h.state === 'up';
    this.acceptsWork = h.apparmor === AppArmorMode.APP_ARMOR_MODE_ENFORCED || h.apparmor === AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE;
    this.allocated = { cpuMillis: a?.cpuMillis ?? 0, memoryMib: a?.memoryMib ?? 0 };
    this.haGroups = a?.haGroups ?? new Set();
  }
}

export class FleetView {
  private readonly entries = new Map<string, HostEntry>();
  /** The entries in host id order; rebuilt only when a host comes or goes. */
  private sorted: HostEntry[] | null = null;
  private readonly changed = new Set<string>();
  private complete = false;
  private reading: Promise<readonly HostView[]> | null = null;
  /** Hosts read from the store since the view was made: what the reads cost. */
  hostsRead = 0;

  constructor(
    private readonly storage: Storage,
    private readonly connected: (hostId: string) => boolean,
  ) {}

  /** Reads the whole fleet again on the next `views` (on taking the lead: another process may
   *  have led meanwhile). */
  reset(): void {
    this.complete = false;
    this.changed.clear();
  }

  /** A committed event: when it names a host and may have changed it, that host is read again. */
  eventCommitted(e: { type: string; host?: string }): void {
    if (e.host && !NO_CHANGE.has(e.type)) this.changed.add(e.host);
  }

  /** The host's record or placements changed (a hello, a session opened): read it again. */
  hostChanged(hostId: string): void {
    this.changed.add(hostId);
  }

  /** An award this process just committed, counted before its event is heard. */
  reserved(hostId: string, resources: Resources, haGroup: string): void {
    const e = this.entries.get(hostId);
    if (!e) return;
    e.allocated = { cpuMillis: e.allocated.cpuMillis + resources.cpuMillis, memoryMib: e.allocated.memoryMib + resources.memoryMib };
    if (haGroup) e.haGroups.add(haGroup);
  }

  /** Every host, in id order, up to date with what was committed before the call. */
  views(): Promise<readonly HostView[]> {
    // One read at a time; a caller that arrives during one waits for it and reads again.
    const run = async (): Promise<readonly HostView[]> => {
      if (!this.complete) await this.readAll();
      else if (this.changed.size > 0) await this.readChanged();
      return (this.sorted ??= [...this.entries.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
    };
    const next = (this.reading ?? Promise.resolve()).then(run, run);
    this.reading = next;
    void next.finally(() => {
      if (this.reading === next) this.reading = null;
    }).catch(() => undefined);
    return next;
  }

  private async readAll(): Promise<void> {
    // Marks from here on are for changes this read may or may not see: they are read next time.
    this.changed.clear();
    const [hosts, allocation] = await this.storage.read(async (r) => [await r.hosts.list(), await r.instances.allocationByHost()] as const);
    this.entries.clear();
    for (const h of hosts) {
      const e = new HostEntry(h, this.connected);
      e.update(h, allocation.get(h.id));
      this.entries.set(h.id, e);
    }
    this.hostsRead += hosts.length;
    this.sorted = null;
    this.complete = true;
  }

  private async readChanged(): Promise<void> {
    const ids = [...this.changed];
    this.changed.clear();
    let hosts: HostRecord[];
    let allocation: Map<string, HostAllocation>;
    try {
      [hosts, allocation] = await this.storage.read(async (r) => [await r.hosts.getMany(ids), await r.instances.allocationOfHosts(ids)] as const);
    } catch (err) {
      for (const id of ids) this.changed.add(id); // read next time
      throw err;
    }
    const found = new Set<string>();
    for (const h of hosts) {
      found.add(h.id);
      let e = this.entries.get(h.id);
      if (!e) {
        e = new HostEntry(h, this.connected);
        this.entries.set(h.id, e);
        this.sorted = null;
      }
      e.update(h, allocation.get(h.id));
    }
    for (const id of ids) {
      if (!found.has(id) && this.entries.delete(id)) this.sorted = null;
    }
    this.hostsRead += ids.length;
  }
}
