/**
 * What the agent learns of a container from the engine, and when it learned it.
 *
 * Every observation carries `takenAt`, a stamp of the agent's own logical clock taken when the
 * observation was made: for an answer to a request, when the request was sent (the engine's
 * snapshot is no older than that, and may be much older than its answer); for an event, when the
 * agent received it (what an event says — the container died, it is gone — stays true from then
 * on, since the agent never restarts a container). Every transition of an instance takes a stamp from the same clock, so "this
 * observation was taken before the instance's latest transition" is a comparison of two numbers,
 * exact, and never a question of whose wall clock (the engine's timestamps are not used).
 */

/** A logical clock: each stamp is larger than every stamp before it. One per agent. */
export class ObservationClock {
  private last = 0;

  next(): number {
    this.last += 1;
    return this.last;
  }
}

/** About one container, by id; `instanceId` is the podium.instance label it carries; `source`
 *  says whether the event stream or a full check saw it (for logs and metrics only). */
interface ObservationBase {
  instanceId: string;
  containerId: string;
  takenAt: number;
  source: 'event' | 'check';
}

/**
 * - `stopped`: the container is not running: `state` is the engine's word for what it is instead
 *   ("exited", "dead"; "created" when it never started), with the exit code and whether the
 *   kernel's OOM killer ended it. From a `die` event (state "exited") or a full check;
 * - `oom`: the OOM killer struck (Docker sends `oom` before the `die`);
 * - `gone`: the container no longer exists (a `destroy` event, or missing from a list).
 */
export type Observation =
  | (ObservationBase & { kind: 'stopped'; state: string; exitCode: number; oomKilled: boolean })
  | (ObservationBase & { kind: 'oom' })
  | (ObservationBase & { kind: 'gone' });

/** The message reported to the server for a container that stopped, e.g. "container exited
 *  with exit code 3". */
export function exitMessage(state: string, exitCode: number, oomKilled: boolean): string {
  return `container ${state} with exit code ${exitCode}${oomKilled ? ' (out of memory)' : ''}`;
}
