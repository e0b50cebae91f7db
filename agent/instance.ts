/**
 * One instance's life on this host, as a state machine that owns its transitions:
 *
 * ```
 * awarded ──► creating ──started──► running ──exited──► exited ──┐
 *    │           │  └──exited─────────────────────────► exited   ├──► removing ──► removed
 *    └───────────┴──could not start / gone──► failed ────────────┘
 *        (any phase but removed ──the server asks──► removing)
 * ```
 *
 * The agent's procedures (award, removal) call the named transitions; what the engine says comes
 * in as observations (observation.ts). An observation is applied only when it was taken after the
 * instance's latest transition and names the instance's current container: a container list
 * requested before an award's start says nothing about the container that start made run.
 *
 * It reports to the server only what follows a transition it made: running → RUNNING; exited and
 * failed → FAILED with why. Phases only move forward, so a late or repeated observation can
 * never undo a report.
 */
import type { ContainerReport, ContainerSpec, InstanceStatus } from '../gen/podium/v1/agent';
import { InstanceState, type Resources } from '../gen/podium/v1/resources';
import { exitMessage, type Observation, type ObservationClock } from './observation';

export type InstancePhase = 'awarded' | 'creating' | 'running' | 'exited' | 'failed' | 'removing' | 'removed';

const NEXT: Readonly<Record<InstancePhase, readonly InstancePhase[]>> = {
  awarded: ['creating', 'failed', 'removing'],
  creating: ['running', 'exited', 'failed', 'removing'],
  running: ['exited', 'failed', 'removing'],
  exited: ['removing'],
  failed: ['removing'],
  removing: ['removed'],
  removed: [],
};

/** What placement and bidding need to know of an instance. */
export interface InstanceFacts {
  instanceId: string;
  tenant: string;
  environment: string;
  service: string;
  haGroup: string;
  resources: Resources;
}

export class Instance {
  private current: InstancePhase;
  private stamp: number;
  private container = '';
  private why = '';
  private oomSeen = false;
  /** Its container's address on the environment's network, once known ('' before). */
  address = '';

  private constructor(
    readonly facts: Readonly<InstanceFacts>,
    phase: InstancePhase,
    private readonly clock: ObservationClock,
    private readonly report: (status: InstanceStatus) => void,
  ) {
    this.current = phase;
    this.stamp = clock.next();
  }

  /** An award this host accepted: its resources are reserved from now on. */
  static awarded(spec: ContainerSpec, clock: ObservationClock, report: (s: InstanceStatus) => void): Instance {
    const resources = spec.resources ?? { cpuMillis: 0, memoryMib: 0 };
    return new Instance(
      { instanceId: spec.instanceId, tenant: spec.tenant, environment: spec.environment, service: spec.service, haGroup: spec.haGroup, resources },
      'awarded',
      clock,
      report,
    );
  }

  /**
   * A container found on the engine at start (a restarted agent), in the phase the engine's
   * answer shows. `takenAt` is the stamp taken before that answer was asked for, so that what the
   * watch sees afterwards applies and nothing older does. Nothing is reported: the session's
   * reconcile asks for it (`resend`).
   */
  static adopted(
    facts: InstanceFacts,
    containerId: string,
    state: { running: boolean; status: string; exitCode: number; oomKilled: boolean },
    takenAt: number,
    clock: ObservationClock,
    report: (s: InstanceStatus) => void,
  ): Instance {
    const inst = new Instance(facts, state.running ? 'running' : 'exited', clock, report);
    inst.container = containerId;
    inst.stamp = takenAt;
    if (!state.running) inst.why = exitMessage(state.status, state.exitCode, state.oomKilled);
    return inst;
  }

  get id(): string {
    return this.facts.instanceId;
  }
  get phase(): InstancePhase {
    return this.current;
  }
  /** The stamp of the latest transition (learning its container counts as one). */
  get since(): number {
    return this.stamp;
  }
  get containerId(): string {
    return this.container;
  }

  /** The award's procedure begins: network, container, start. */
  beginCreating(): boolean {
    return this.to('creating');
  }

  /** The container exists. The phase stays `creating`, but this is a transition all the same:
   *  the instance now has a container to observe, and nothing observed before — a list that could
   *  not show the container yet — applies to it. */
  created(containerId: string): void {
    if (this.current !== 'creating' || this.container !== '') return;
    this.container = containerId;
    this.stamp = this.clock.next();
  }

  /** The engine started the container. Refused when something else happened meanwhile (it exited
   *  before the start returned, or the server asked for its removal). */
  started(): boolean {
    return this.to('running');
  }

  /** The container could not be created or started. */
  couldNotStart(message: string): boolean {
    return this.to('failed', message);
  }

  /** The server asked for its removal (or no longer places it here). */
  beginRemoval(): boolean {
    return this.to('removing');
  }

  /** Its container is gone: it holds nothing any more. */
  removed(): boolean {
    return this.to('removed');
  }

  /** Applies an observation of the engine; true when it made a transition. */
  observe(o: Observation): boolean {
    if (o.takenAt < this.stamp) return false;
    if (this.container === '' || o.containerId !== this.container) return false;
    if (this.current !== 'creating' && this.current !== 'running') return false;
    switch (o.kind) {
      case 'oom':
        this.oomSeen = true;
        return false;
      case 'stopped':
        // A container not started yet is what `creating` expects; once running, any state but
        // running means it stopped.
        if (this.current === 'creating' && o.state === 'created') return false;
        return this.to('exited', exitMessage(o.state, o.exitCode, o.oomKilled || this.oomSeen));
      case 'gone':
        return this.to('failed', 'container disappeared');
    }
  }

  /** Reports the current phase again, whatever was reported before (a new session's reconcile).
   *  An instance still being created reports when its start returns. */
  resend(): void {
    this.send();
  }

  /** Whether its resources are reserved on this host. */
  get holds(): boolean {
    return this.current !== 'removed';
  }

  /** Its line in a hello's inventory; undefined once the server asked for its removal. */
  inventory(): ContainerReport | undefined {
    if (this.current === 'removing' || this.current === 'removed') return undefined;
    return { instanceId: this.id, containerId: this.container, running: this.current === 'running' };
  }

  private to(next: InstancePhase, why = ''): boolean {
    if (!NEXT[this.current].includes(next)) return false;
    this.current = next;
    this.stamp = this.clock.next();
    if (why !== '') this.why = why;
    this.send();
    return true;
  }

  /** running → RUNNING; exited, failed → FAILED with why; the other phases report nothing. */
  private send(): void {
    if (this.current === 'running') {
      this.report({ instanceId: this.id, state: InstanceState.INSTANCE_STATE_RUNNING, containerId: this.container, message: '' });
    } else if (this.current === 'exited' || this.current === 'failed') {
      this.report({ instanceId: this.id, state: InstanceState.INSTANCE_STATE_FAILED, containerId: this.container, message: this.why });
    }
  }
}
