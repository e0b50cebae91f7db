/*
 * Why 50–80 %: renewing at half-life leaves the other half to retry through an outage of the
 * Pod API; the spread over 30 % of the lifetime keeps a fleet that joined together (after a
 * restore, or a big deploy) from renewing together. SwarmKit does the same.
 */
const EARLIEST = 0.5;
const LATEST = 0.8;

/**
 * When to renew a certificate valid over [notBefore, notAfter]: notBefore + f × lifetime with
 * f = 0.5 + 0.3 × random(), so always in [50 %, 80 %) of the lifetime. `random` must return a
 * number in [0, 1) (pass Math.random in production, a constant in tests). Throws Error when the
 * dates are invalid or out of order, or `random()` is out of range.
 */
export function renewalTime(notBefore: Date, notAfter: Date, random: () => number): Date {
  const start = notBefore.getTime();
  const end = notAfter.getTime();
  if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) {
    throw new Error('renewalTime: notAfter must be a valid date after notBefore');
  }
  const r = random();
  if (!(r >= 0 && r < 1)) throw new Error(`renewalTime: random() must be in [0, 1), got ${r}`);
  const fraction = EARLIEST + (LATEST - EARLIEST) * r;
  return new Date(start + Math.floor((end - start) * fraction));
}
