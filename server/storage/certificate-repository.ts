import type { CertificateRecord, NewCertificate, RevokedCertificate } from './records';
import type { Sql } from './sql';

interface CertificateRow {
  serial: string;
  role: string;
  name: string;
  not_before: number;
  not_after: number;
  issued_at: number;
  issued_by: string;
  revoked_at: number | null;
  revoke_reason: string;
}

function fromRow(r: CertificateRow): CertificateRecord {
  return {
    serial: r.serial,
    role: r.role,
    name: r.name,
    notBefore: Number(r.not_before),
    notAfter: Number(r.not_after),
    issuedAt: Number(r.issued_at),
    issuedBy: r.issued_by,
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
    revokeReason: r.revoke_reason,
  };
}

/**
 * Every certificate the authority issued to agents, gateways and operators (the server's own is
 * not: it is re-issued at each start and never presented as a client), and its revocation. A
 * revoking write stamps its rows with the next value of one monotonic revision, so that any Pod
 * API process learns of revocations made anywhere by reading a single row.
 */
export class CertificateRepository {
  constructor(private readonly sql: Sql) {}

  async insert(c: NewCertificate, now: number): Promise<void> {
    await this.sql.run(
      `INSERT INTO certificates (serial, role, name, not_before, not_after, issued_at, issued_by) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [c.serial, c.role, c.name, c.notBefore, c.notAfter, now, c.issuedBy],
    );
  }

  async get(serial: string): Promise<CertificateRecord | undefined> {
    const r = await this.sql.get<CertificateRow>(`SELECT * FROM certificates WHERE serial = $1`, [serial]);
    return r && fromRow(r);
  }

  /** Every recorded certificate of one identity, oldest first. */
  async list(role: string, name: string): Promise<CertificateRecord[]> {
    return (await this.sql.all<CertificateRow>(`SELECT * FROM certificates WHERE role = $1 AND name = $2 ORDER BY issued_at, serial`, [role, name])).map(fromRow);
  }

  /** Certificates of one identity that are neither revoked nor expired at `now`. */
  async listValid(role: string, name: string, now: number): Promise<CertificateRecord[]> {
    const rows = await this.sql.all<CertificateRow>(
      `SELECT * FROM certificates WHERE role = $1 AND name = $2 AND revoked_at IS NULL AND not_after > $3 ORDER BY issued_at, serial`,
      [role, name, now],
    );
    return rows.map(fromRow);
  }

  /**
   * Revokes one certificate by serial, or every unrevoked certificate of one identity, and moves
   * the revision on by one (once, however many rows). Returns the certificates this call revoked;
   * already revoked ones are left as they were (their first reason stays). The revision row is
   * updated first: on PostgreSQL that row lock serializes revoking writes, so revisions are
   * stamped in commit order.
   */
  async revoke(match: { serial: string } | { role: string; name: string }, reason: string, now: number): Promise<CertificateRecord[]> {
    const targets =
      'serial' in match
        ? await this.sql.all<CertificateRow>(`SELECT * FROM certificates WHERE serial = $1 AND revoked_at IS NULL`, [match.serial])
        : await this.sql.all<CertificateRow>(`SELECT * FROM certificates WHERE role = $1 AND name = $2 AND revoked_at IS NULL`, [match.role, match.name]);
    if (targets.length === 0) return [];
    const row = await this.sql.get<{ revision: number }>(`UPDATE revocation_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision`);
    const revision = Number(row!.revision);
    for (const t of targets) {
      await this.sql.run(`UPDATE certificates SET revoked_at = $1, revoke_reason = $2, revocation = $3 WHERE serial = $4 AND revoked_at IS NULL`, [
        now,
        reason,
        revision,
        t.serial,
      ]);
    }
    return targets.map((t) => ({ ...fromRow(t), revokedAt: now, revokeReason: reason }));
  }

  /** The revocation revision: it grows by one with every revoking write, and never goes back. */
  async revision(): Promise<number> {
    const r = await this.sql.get<{ revision: number }>(`SELECT revision FROM revocation_revision WHERE id = 1`);
    return Number(r?.revision ?? 0);
  }

  /** Certificates revoked at a revision after `revision` that are still unexpired at `now`. */
  async listRevokedAfter(revision: number, now: number): Promise<RevokedCertificate[]> {
    const rows = await this.sql.all<RevokedCertificate>(
      `SELECT serial, role, name, not_after AS "notAfter", revoked_at AS "revokedAt", revocation AS revision FROM certificates
       WHERE revocation > $1 AND not_after > $2 ORDER BY revocation, serial`,
      [revision, now],
    );
    return rows.map((r) => ({ ...r, notAfter: Number(r.notAfter), revokedAt: Number(r.revokedAt), revision: Number(r.revision) }));
  }
}
