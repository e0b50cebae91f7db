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
export type PortProtocolName = 'tcp' | 'http';

export interface PortSpec {
  name: string;
  port: number;
  protocol: PortProtocolName;
}

export interface ServiceSpec {
  image: string;
  command: string[];
  replicas: number;
  ha: boolean;
  resources: ResourcesRow;
  placement: PlacementPolicyName;
  /** The ports its containers serve (none before ports existed). */
  ports: PortSpec[];
  /** Capabilities kept, upper case without "CAP_", sorted. */
  capabilities: string[];
  /** Other environments of the tenant whose services may reach it, sorted. */
  allowFrom: string[];
  /** Read-only root filesystem (true unless the customer opted out). */
  readOnlyRoot: boolean;
  /** Absolute directories its containers write to, without trailing "/", as given otherwise. */
  writablePaths: string[];
  /** Its published endpoint, if any (published-endpoints.ts). */
  expose?: ExposeSpec;
}

/** A published endpoint as stored: the key sealed under the server's key file. */
export interface ExposeSpec {
  port: number;
  hostname: string;
  certificatePem: string;
  keySealed: string;
  source: 'platform-ca' | 'uploaded';
  notAfter: number;
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

export interface JoinTokenRecord {
  id: string;
  secretHash: string;
  role: string;
  expiresAt: number;
  /** How many Joins the token allows, and how many it has had. */
  uses: number;
  used: number;
  /** The host id a Join with this token gets; empty when the server picks one. */
  hostId: string;
  /** A Join with this token may take over a host id that still holds a valid certificate. */
  replace: boolean;
}

export type NewJoinToken = Pick<JoinTokenRecord, 'id' | 'secretHash' | 'role' | 'expiresAt'> & Partial<Pick<JoinTokenRecord, 'uses' | 'hostId' | 'replace'>>;

export interface CertificateRecord {
  /** Canonical serial (certs' canonicalSerial): lower-case hex, no leading zeros. */
  serial: string;
  role: string;
  name: string;
  notBefore: number;
  notAfter: number;
  issuedAt: number;
  /** How it came to be: "join token <id>", "renewal of <serial>", "podium certs issue". */
  issuedBy: string;
  revokedAt: number | null;
  revokeReason: string;
}

export type NewCertificate = Pick<CertificateRecord, 'serial' | 'role' | 'name' | 'notBefore' | 'notAfter' | 'issuedBy'>;

export interface RevokedCertificate {
  serial: string;
  role: string;
  name: string;
  notAfter: number;
  /** When it was revoked (ms). */
  revokedAt: number;
  /** The revocation revision that revoked it. */
  revision: number;
}

/** A Customer API token: its hash (never the token), whom it acts for, and when it was made. */
export interface ApiTokenRecord {
  hash: string;
  tenant: string;
  name: string;
  role: string;
  createdAt: number;
}

/** A pending instance as the auction's queue keeps it. */
export interface PendingKey {
  id: string;
  tenant: string;
  environment: string;
  service: string;
  haGroup: string;
}
