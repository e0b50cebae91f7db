/**
 * The agent's container runtime: the Docker Engine client, the hardened create body, AppArmor
 * profiles, and the locally made busybox base image. See README.md in this folder.
 */
export { DockerEngine, DockerEngineError, DOCKER_API_VERSION } from './docker-engine';
export type { ContainerSummary, EngineInfo, ExecResult, NetworkDetail, NetworkSummary } from './docker-engine';
export { engineEvent, JsonLines } from './engine-events';
export type { EngineEvent, EventHandlers, EventSubscription } from './engine-events';
export {
  ALLOWED_CAPABILITIES,
  ContainerSpecError,
  DEFAULT_PIDS_LIMIT,
  LABEL_ENVIRONMENT,
  MAX_WRITABLE_PATHS,
  LABEL_HA_GROUP,
  LABEL_HOST,
  LABEL_INSTANCE,
  LABEL_SERVICE,
  LABEL_TENANT,
  assertConfined,
  containerBody,
  containerName,
  networkName,
  normalizeCapabilities,
  writablePath,
  writablePathProblem,
} from './container-spec';
export type { ContainerBodyOptions, ContainerCreateBody } from './container-spec';
export { AppArmorError, checkProfile, generateProfile, kernelAppArmor, loadProfile, profileName, serviceProfile, unloadProfile } from './apparmor';
export type { KernelAppArmor, ProfileOptions } from './apparmor';
export { BUSYBOX_BINARY, BUSYBOX_IMAGE, busyboxRootfs, ensureBusyboxImage, isStaticElf } from './base-image';
export { TarWriter } from './tar-writer';
export type { TarEntryOptions } from './tar-writer';
