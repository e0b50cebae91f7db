import type { Sql } from './sql';

export interface StoredAuthority {
  trustDomain: string;
  certPem: string;
  /** The CA key, sealed (certs' sealSecret) under the key file every Pod API process is given. */
  keyEncrypted: string;
}

/** The one certificate authority of the fleet, so that every Pod API process signs with the same. */
export class AuthorityRepository {
  constructor(private readonly sql: Sql) {}

  async get(): Promise<StoredAuthority | undefined> {
    return this.sql.get<StoredAuthority>(
      `SELECT trust_domain AS "trustDomain", cert_pem AS "certPem", key_encrypted AS "keyEncrypted" FROM authority WHERE id = 1`,
    );
  }

  /** Stores the authority unless one is stored already; true when this one was. */
  async insertIfAbsent(a: StoredAuthority, now: number): Promise<boolean> {
    const { changes } = await this.sql.run(
      `INSERT INTO authority (id, trust_domain, cert_pem, key_encrypted, created_at) VALUES (1, $1, $2, $3, $4) ON CONFLICT DO NOTHING`,
      [a.trustDomain, a.certPem, a.keyEncrypted, now],
    );
    return changes === 1;
  }
}
