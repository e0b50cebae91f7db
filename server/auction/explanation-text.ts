import { EXCLUSION_ORDER as ORDER, type ExclusionReason, type Explanation } from './types';

/** How each reason reads in an explanation. */
const WORDING: Readonly<Record<ExclusionReason, string>> = {
  down: 'down',
  'no-apparmor': 'no AppArmor',
  constraint: 'constraints',
  cpu: 'CPU',
  memory: 'memory',
  ha: 'the HA rule',
  refused: 'refused the award',
  image: 'cannot get the image',
  'no-bid': 'no bid',
};

/**
 * Reasons that say what the host is or did ("2 down", "1 refused the award", "3 no bid") rather
 * than a rule that excluded it ("2 excluded by memory"). Reading "excluded by down" would be odd.
 */
const STATES: ReadonlySet<ExclusionReason> = new Set<ExclusionReason>(['down', 'refused', 'image', 'no-bid']);


const hostsPhrase = (n: number): string => `${n} ${n === 1 ? 'host' : 'hosts'}`;

/**
 * "3 hosts: 2 excluded by memory, 1 by CPU". Reasons most-first (ties in pipeline
 * order); the first rule-type reason says "excluded by", later ones only "by"; state-type reasons
 * (down, refused the award, no bid) stand alone. Zero counts are left out. Never empty.
 */
export function explanationText(hosts: number, excluded: Partial<Record<ExclusionReason, number>>): string {
  if (hosts === 0) return '0 hosts: there is no host to place it on';
  const reasons = ORDER.filter((r) => (excluded[r] ?? 0) > 0).sort(
    (a, b) => (excluded[b] ?? 0) - (excluded[a] ?? 0) || ORDER.indexOf(a) - ORDER.indexOf(b),
  );
  if (reasons.length === 0) return `${hostsPhrase(hosts)}: none excluded`;
  let saidExcluded = false;
  const clauses = reasons.map((reason) => {
    const n = excluded[reason] ?? 0;
    if (STATES.has(reason)) return `${n} ${WORDING[reason]}`;
    const verb = saidExcluded ? 'by' : 'excluded by';
    saidExcluded = true;
    return `${n} ${verb} ${WORDING[reason]}`;
  });
  return `${hostsPhrase(hosts)}: ${clauses.join(', ')}`;
}

/** Builds an Explanation from per-reason counts, dropping zero counts; `byAgents` as in Explanation. */
export function explanation(hosts: number, counts: Partial<Record<ExclusionReason, number>>, byAgents = 0): Explanation {
  const excluded: Partial<Record<ExclusionReason, number>> = {};
  for (const reason of ORDER) {
    const n = counts[reason] ?? 0;
    if (n > 0) excluded[reason] = n;
  }
  const why: Explanation = { hosts, excluded, text: explanationText(hosts, excluded) };
  if (byAgents > 0) why.byAgents = byAgents;
  return why;
}
