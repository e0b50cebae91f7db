import { FencedError, type UnitOfWork } from './storage';

/** What a fenced writer needs to know: the lease epoch this process leads at, if it leads. */
export interface LeaderEpoch {
  readonly epoch: number | null;
}

/**
 * First step of a unit of work that only the leader may commit (awards, placements, hosts marked
 * down): fails it with FencedError unless this process leads and the lease is still at its epoch.
 */
export async function fenced(uow: UnitOfWork, leader: LeaderEpoch): Promise<void> {
  if (leader.epoch === null) throw new FencedError('this process does not lead');
  await uow.fence(leader.epoch);
}
