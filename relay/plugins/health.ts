import type { Database } from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import type { IntegrityState } from '../store/integrity.js';
import { readMigrations } from '../store/migrate.js';

/** Whether the relay can serve: ready with its schema version, or why not. */
export type ReadinessCheck = () => { ready: true; schema: number } | { ready: false; reason: string };

/**
 * Readiness of a SQLite-backed relay: not shutting down, database open and answering, every
 * migration this build knows applied, and no damage found by the start-up integrity check.
 */
export function createSqliteReadiness(
  db: Database,
  isClosing: () => boolean,
  integrity: () => IntegrityState = () => ({ state: 'off' }),
  known: readonly number[] = readMigrations().map((m) => m.version),
): ReadinessCheck {
  const applied = db.prepare('SELECT version FROM schema_migrations').pluck();
  const probe = db.prepare('SELECT 1 FROM events LIMIT 1');
  return () => {
    if (isClosing()) return { ready: false, reason: 'shutting down' };
    if (!db.open) return { ready: false, reason: 'database closed' };
    const check = integrity();
    if (check.state === 'failed') return { ready: false, reason: `database failed its integrity check: ${check.detail}` };
    try {
      const have = new Set(applied.all() as number[]);
      const missing = known.filter((v) => !have.has(v));
      if (missing.length > 0) return { ready: false, reason: `migrations not applied: ${missing.join(', ')}` };
      probe.get();
      return { ready: true, schema: Math.max(0, ...have) };
    } catch (err) {
      return { ready: false, reason: `database error: ${(err as { code?: string }).code ?? (err as Error).message}` };
    }
  };
}

/** GET /health (the process is alive) and GET /ready (it can serve: 200, or 503 with the reason). */
export function registerHealth(app: FastifyInstance, ready: ReadinessCheck): void {
  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/ready', async (_req, reply) => {
    const r = ready();
    if (r.ready) return { status: 'ready', schema: r.schema };
    return reply.code(503).send({ status: 'not ready', reason: r.reason });
  });
}
