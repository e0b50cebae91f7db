/**
 * Mocha root hooks (loaded by .mocharc.json's "require"): what is shared by the whole run (the
 * test bed, the PostgreSQL cluster) is torn down once, after the last suite, whichever suites ran.
 */
import { stopSharedPostgres } from './databases';
import { stopSharedTestbed } from './testbed';

export const mochaHooks = {
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(120_000);
    await Promise.all([stopSharedTestbed(), stopSharedPostgres()]);
  },
};
