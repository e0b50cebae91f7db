// Times a round of the auction core (planRound + determineWinners) on seeded synthetic fleets,
// beside a naive first-fit on the same inputs, and prints ONE JSON object of medians.
// Run: node dist/bench/auction.js
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { determineWinners, planRound, seededRandom } from '../server/auction';
import { firstFit } from './first-fit';
import { agentAnswers, workload } from './workload';

const FLEETS = [10, 100, 1000, 5000];
const LOT_COUNTS = [100, 1000];
const RUNS = 15; // odd, so the median is one measured run
const WARM_UP = 2; // untimed runs of each case before its measured runs
const SEED = 20240601;
/** d of "power of d choices": enough bidders per lot for price to matter, few enough to stay flat. */
const MAX_CANDIDATES_PER_LOT = 8;

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

function benchCase(hostCount: number, lotCount: number) {
  const { hosts, lots } = workload(hostCount, lotCount, seededRandom(SEED ^ (hostCount * 7919 + lotCount)));
  const plan: number[] = [];
  const determine: number[] = [];
  const total: number[] = [];
  const naive: number[] = [];
  let placed = 0;
  let hostsCalled = 0;
  let bidCount = 0;
  let naivePlaced = 0;
  for (let run = -WARM_UP; run < RUNS; run++) {
    // Same seed each run: every run does the same work, so the spread is the machine's.
    const random = seededRandom(SEED);
    const t0 = performance.now();
    const round = planRound(hosts, lots, { maxCandidatesPerLot: MAX_CANDIDATES_PER_LOT, random });
    const t1 = performance.now();
    const { bids, declines } = agentAnswers(hosts, lots, round.calls, seededRandom(SEED)); // the network's part, untimed
    const t2 = performance.now();
    const result = determineWinners(hosts, lots, bids, declines);
    const t3 = performance.now();
    naivePlaced = firstFit(hosts, lots);
    const t4 = performance.now();
    if (run < 0) continue; // warm-up
    plan.push(t1 - t0);
    determine.push(t3 - t2);
    total.push(t1 - t0 + (t3 - t2));
    naive.push(t4 - t3);
    placed = result.awards.length;
    hostsCalled = round.calls.size;
    bidCount = bids.length;
  }
  return {
    hosts: hostCount,
    lots: lotCount,
    haLots: lots.filter((l) => l.haGroup !== '').length,
    auction: {
      planMs: round3(median(plan)),
      determineMs: round3(median(determine)),
      totalMs: round3(median(total)),
      placed,
      hostsCalled,
      bids: bidCount,
    },
    firstFit: { ms: round3(median(naive)), placed: naivePlaced },
  };
}

const allCases = () => FLEETS.flatMap((h) => LOT_COUNTS.map((l) => benchCase(h, l)));
allCases(); // a whole untimed pass first: the first case measured must not pay for the JIT alone
const cases = allCases();
console.log(
  JSON.stringify(
    {
      node: process.version,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cpus: os.cpus().length,
      platform: `${os.platform()} ${os.arch()}`,
      runs: RUNS,
      seed: SEED,
      maxCandidatesPerLot: MAX_CANDIDATES_PER_LOT,
      note: 'medians in ms; auction = planRound + determineWinners (agents\' bidding untimed); firstFit = naive baseline on the same hosts and lots',
      cases,
    },
    null,
    2,
  ),
);
