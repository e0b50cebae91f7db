import type { DockerEngine } from './runtime';

/**
 * What the agent asks of the container engine: the DockerEngine methods it calls, and nothing
 * else. The agent takes this port rather than the class, so that a unit test of one agent module
 * can stand a scripted engine in its place; everything outside such a test passes a DockerEngine.
 */
export type ContainerEngine = Pick<
  DockerEngine,
  | 'ping'
  | 'imageExists'
  | 'pullImage'
  | 'ensureNetwork'
  | 'listNetworks'
  | 'forceRemoveNetwork'
  | 'watchEvents'
  | 'listContainers'
  | 'inspectContainer'
  | 'createContainer'
  | 'startContainer'
  | 'stopContainer'
  | 'removeContainer'
>;
