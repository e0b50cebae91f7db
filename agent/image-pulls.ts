/**
 * Whether an image is on this host, and the pulls started to get it. A bid has a deadline and a
 * pull does not, so a missing image is pulled in the background while the host declines; a failed
 * pull is not tried again for IMAGE_RETRY_MS, so a missing image does not cost a pull per round.
 */
import type { Logger } from 'pino';
import type { ContainerEngine } from './container-engine';

/** How long a failed image pull keeps a host from trying that image again. */
export const IMAGE_RETRY_MS = 60_000;

export class ImagePulls {
  /** Images this host is pulling, or failed to pull (and until when it will not try again). */
  private readonly images = new Map<string, { pulling: true } | { pulling: false; retryAt: number }>();

  constructor(
    private readonly engine: Pick<ContainerEngine, 'imageExists' | 'pullImage'>,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** True when the image is here; otherwise false, with a pull started unless one is running or
   *  failed less than IMAGE_RETRY_MS ago. Never throws. */
  async ready(ref: string): Promise<boolean> {
    if (await this.engine.imageExists(ref).catch(() => false)) return true;
    const known = this.images.get(ref);
    if (known && (known.pulling || known.retryAt > this.now())) return false;
    this.images.set(ref, { pulling: true });
    this.engine.pullImage(ref).then(
      () => {
        this.images.delete(ref);
        this.log.info({ image: ref }, 'image pulled');
      },
      (err: Error) => {
        this.images.set(ref, { pulling: false, retryAt: this.now() + IMAGE_RETRY_MS });
        this.log.warn({ image: ref, err: err.message }, 'image pull failed');
      },
    );
    return false;
  }
}
