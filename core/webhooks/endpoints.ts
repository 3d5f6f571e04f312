// Merchant webhook endpoints in Postgres (webhook_endpoints). Every query is scoped by merchant
// where a merchant asks; the delivery side reads by id. Secrets are encrypted at rest (secrets.ts)
// and decrypted only to sign (sinks/webhooks/signing.ts).
import { randomBytes } from 'node:crypto';
import type { PgPool } from '../postgres.ts';
import { encryptSecret, newSecret } from './secrets.ts';

export interface EndpointRow {
  id: string;
  merchant_id: string;
  url: string;
  description: string | null;
  event_types: string[] | null;
  enabled: boolean;
  max_in_flight: number;
  secret_enc: string;
  previous_secret_enc: string | null;
  previous_expires_at: Date | null;
  failing_since: Date | null;
  disabled_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

/** The endpoint as its merchant sees it (never a secret). */
export interface EndpointView {
  id: string;
  url: string;
  description: string | null;
  event_types: string[] | null;
  enabled: boolean;
  max_in_flight: number;
  disabled_reason: string | null;
  failing_since: string | null;
  created_at: string;
  updated_at: string;
}

export function view(r: EndpointRow): EndpointView {
  return {
    id: r.id,
    url: r.url,
    description: r.description,
    event_types: r.event_types,
    enabled: r.enabled,
    max_in_flight: r.max_in_flight,
    disabled_reason: r.disabled_reason,
    failing_since: r.failing_since?.toISOString() ?? null,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  };
}

export function wants(r: Pick<EndpointRow, 'event_types'>, type: string): boolean {
  return !r.event_types || r.event_types.length === 0 || r.event_types.includes(type);
}

const COLS =
  'id, merchant_id, url, description, event_types, enabled, max_in_flight, secret_enc, previous_secret_enc, previous_expires_at, failing_since, disabled_reason, created_at, updated_at';

export interface EndpointPatch {
  url?: string;
  description?: string | null;
  event_types?: string[] | null;
  enabled?: boolean;
  max_in_flight?: number;
}

export class EndpointStore {
  constructor(
    private readonly pool: PgPool,
    private readonly key: Buffer,
  ) {}

  async create(merchantId: string, p: Required<Pick<EndpointPatch, 'url'>> & EndpointPatch): Promise<{ row: EndpointRow; secret: string }> {
    const secret = newSecret();
    const id = `we_${randomBytes(12).toString('base64url')}`;
    const { rows } = await this.pool.query<EndpointRow>(
      `INSERT INTO webhook_endpoints (id, merchant_id, url, description, event_types, enabled, max_in_flight, secret_enc)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLS}`,
      [id, merchantId, p.url, p.description ?? null, p.event_types ?? null, p.enabled ?? true, p.max_in_flight ?? 1, encryptSecret(secret, this.key)],
    );
    return { row: rows[0]!, secret };
  }

  async list(merchantId: string): Promise<EndpointRow[]> {
    return (
      await this.pool.query<EndpointRow>(`SELECT ${COLS} FROM webhook_endpoints WHERE merchant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, [
        merchantId,
      ])
    ).rows;
  }

  /** Live endpoints of several merchants (the dispatcher). */
  async forMerchants(merchantIds: readonly string[]): Promise<EndpointRow[]> {
    return (await this.pool.query<EndpointRow>(`SELECT ${COLS} FROM webhook_endpoints WHERE merchant_id = ANY($1) AND deleted_at IS NULL`, [merchantIds])).rows;
  }

  /** By id, of this merchant only (undefined for another's: the API answers 404 alike). */
  async get(merchantId: string | undefined, id: string): Promise<EndpointRow | undefined> {
    const { rows } =
      merchantId === undefined
        ? await this.pool.query<EndpointRow>(`SELECT ${COLS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL`, [id])
        : await this.pool.query<EndpointRow>(`SELECT ${COLS} FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL`, [
            id,
            merchantId,
          ]);
    return rows[0];
  }

  async update(merchantId: string, id: string, p: EndpointPatch): Promise<EndpointRow | undefined> {
    const cur = await this.get(merchantId, id);
    if (!cur) return undefined;
    const enabling = p.enabled === true && !cur.enabled;
    const { rows } = await this.pool.query<EndpointRow>(
      `UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5, enabled = $6, max_in_flight = $7,
         failing_since = CASE WHEN $8 THEN NULL ELSE failing_since END, disabled_reason = CASE WHEN $8 THEN NULL ELSE disabled_reason END,
         updated_at = now()
       WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL RETURNING ${COLS}`,
      [
        id,
        merchantId,
        p.url ?? cur.url,
        p.description === undefined ? cur.description : p.description,
        p.event_types === undefined ? cur.event_types : p.event_types,
        p.enabled ?? cur.enabled,
        p.max_in_flight ?? cur.max_in_flight,
        // re-enabling starts the failure clock afresh
        enabling,
      ],
    );
    return rows[0];
  }

  async remove(merchantId: string, id: string): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE webhook_endpoints SET deleted_at = now(), enabled = false WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL`,
      [id, merchantId],
    );
    return r.rowCount === 1;
  }

  /** A new secret; the old one keeps signing (a second signature) for `graceMs`. */
  async rotate(merchantId: string, id: string, graceMs: number): Promise<{ row: EndpointRow; secret: string } | undefined> {
    const secret = newSecret();
    const { rows } = await this.pool.query<EndpointRow>(
      `UPDATE webhook_endpoints SET previous_secret_enc = secret_enc, previous_expires_at = now() + ($3 || ' milliseconds')::interval,
         secret_enc = $4, updated_at = now()
       WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL RETURNING ${COLS}`,
      [id, merchantId, String(graceMs), encryptSecret(secret, this.key)],
    );
    return rows[0] ? { row: rows[0], secret } : undefined;
  }

  /** An attempt failed: start the failure clock if it is not running; returns when it started. */
  async markFailing(id: string, now: number): Promise<Date | undefined> {
    const { rows } = await this.pool.query<{ failing_since: Date }>(
      `UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 RETURNING failing_since`,
      [id, new Date(now)],
    );
    return rows[0]?.failing_since;
  }

  async markHealthy(id: string): Promise<void> {
    await this.pool.query(`UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL`, [id]);
  }

  /** Disable a failing endpoint; true when this call disabled it (one alert per disabling). */
  async disable(id: string, reason: string): Promise<boolean> {
    const r = await this.pool.query(`UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now() WHERE id = $1 AND enabled`, [
      id,
      reason,
    ]);
    return r.rowCount === 1;
  }

  async countDisabled(): Promise<number> {
    const { rows } = await this.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM webhook_endpoints WHERE NOT enabled AND deleted_at IS NULL AND disabled_reason IS NOT NULL`,
    );
    return Number(rows[0]?.n ?? 0);
  }
}
