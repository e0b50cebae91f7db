/**
 * What the storage module hands out and takes in: plain records, never rows or driver types.
 */
export type InstanceStateName = 'pending' | 'starting' | 'running' | 'failed' | 'lost';
export type HostStateName = 'up' | 'down';
export type PlacementPolicyName = 'spread' | 'binpack';

export interface ResourcesRow {
  cpuMillis: number;
  memoryMib: number;
}

/** What a customer asked for; stored as given, never rewritten by the system. */
export interface ServiceSpec {
  image: string;
  command: string[];
  replicas: number;
  ha: boolean;
  resources: ResourcesRow;
  placement: PlacementPolicyName;
}

export interface ServiceRecord {
  tenant: string;
  environment: string;
  name: string;
  spec: ServiceSpec;
  createdAt: number;
}

export interface EnvironmentRecord {
  tenant: string;
  name: string;
  createdAt: number;
}

export interface HostRecord {
  id: string;
  pod: string;
  provider: string;
  labels: Record<string, string>;
  capacity: ResourcesRow;
  apparmor: number;
  state: HostStateName;
  /** The last heartbeat written: at connect and when marked down (liveness lives in memory). */
  lastHeartbeat: number;
  joinedAt: number;
}

export interface InstanceRecord {
  id: string;
  tenant: string;
  environment: string;
  service: string;
  haGroup: string;
  resources: ResourcesRow;
  host: string | null;
  state: InstanceStateName;
  containerId: string;
  message: string;
  excludedHosts: string[];
  createdAt: number;
  updatedAt: number;
}

export type NewInstance = Omit<InstanceRecord, 'host' | 'state' | 'containerId' | 'excludedHosts' | 'updatedAt'>;

export interface EventRecord {
  sequence: number;
  time: number;
  tenant: string;
  type: string;
  environment: string;
  service: string;
  instance: string;
  host: string;
  message: string;
}

export type NewEvent = Pick<EventRecord, 'tenant' | 'type'> &
  Partial<Pick<EventRecord, 'environment' | 'service' | 'instance' | 'host' | 'message' | 'time'>>;

/** A tenant's quota: the most its services may ask for together (replicas × resources). */
export interface QuotaLimits {
  cpuMillis: number;
  memoryMib: number;
  instances: number;
}
