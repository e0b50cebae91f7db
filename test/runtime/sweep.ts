import Modem from 'docker-modem';
import type { DockerEngine } from '../../agent/runtime';
import { processAlive as alive } from '../../agent/runtime/file-lock';

/**
 * Removes what runtime tests of a process that no longer exists left on the engine (a run killed
 * before its `after` hooks): containers, networks and image tags whose test prefix
 * (`podiumtest-<kind>-<pid>-…`, see uniquePrefix) names a dead process. Touches nothing else.
 */
export async function sweepStaleTestResources(engine: DockerEngine, socketPath: string): Promise<void> {
  const modem = new Modem({ socketPath, version: 'v1.41' });
  const get = (path: string): Promise<unknown> =>
    new Promise((resolve, reject) =>
      modem.dial({ path, method: 'GET', statusCodes: { 200: true } }, (err, result) => (err !== null ? reject(err) : resolve(result))),
    );
  const stale = (name: string | undefined, pattern: RegExp): boolean => {
    const pid = Number(pattern.exec(name ?? '')?.[1]);
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid && !alive(pid);
  };

  for (const c of await engine.listContainers({})) {
    if (stale(c.labels['podium.host'], /^podiumtest-host-(\d+)-/)) await engine.removeContainer(c.id);
  }
  for (const n of (await get('/networks')) as Array<{ Id: string; Name: string }>) {
    if (stale(n.Name, /^podium-podiumtest-host-(\d+)-/)) await engine.removeNetwork(n.Id);
  }
  for (const image of (await get('/images/json')) as Array<{ RepoTags: string[] | null }>) {
    for (const tag of image.RepoTags ?? []) if (stale(tag, /^podiumtest-image-(\d+)-/)) await engine.removeImage(tag);
  }
}

