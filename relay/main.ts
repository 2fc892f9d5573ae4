import { pino } from 'pino';
import type { AddressInfo } from 'node:net';
import { buildRelay } from './app.js';
import { startRelayAdvert } from './mdns.js';
import { RoostError, loadConfig, readConfigSources } from './config.js';
import { traceLogFields } from './tracing.js';
import { checkHost, checkPort, describeListenError, lockDatabase } from './startup-checks.js';
import { isPostgresUrl, redactDbUrl } from './store/postgres.js';

/** One line on stderr with the code, then exit: the mistakes a newcomer makes at start-up are not stack traces. */
function fail(err: unknown, log?: { fatal: (o: object, m: string) => void }): never {
  const code = err instanceof RoostError ? err.code : 'ROOST_ERR_START';
  if (log && !(err instanceof RoostError)) log.fatal({ code, err }, `cannot start: ${(err as Error).message}`);
  process.stderr.write(`roost: cannot start: ${(err as Error).message} (${code})\n`);
  process.exit(1);
}

/** Starts the relay from the environment and flags: config → buildRelay → listen. */
export async function runRelay(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  let config;
  try {
    config = loadConfig(readConfigSources(process.env, argv));
  } catch (err) {
    const code = err instanceof RoostError ? err.code : 'ROOST_ERR_CONFIG';
    process.stderr.write(`roost: ${(err as Error).message} (${code})\n`);
    process.exit(2);
  }
  const log = pino({ level: config.logLevel, mixin: traceLogFields });
  // in this order, so a wrong HOST or a taken port fails before the database is opened or locked
  try {
    await checkHost(config.host);
    await checkPort(config.host, config.port);
    // A PostgreSQL database is shared by design (several instances); a SQLite file has one owner.
    if (!isPostgresUrl(config.db)) lockDatabase(config.db);
  } catch (err) {
    fail(err);
  }
  let relay;
  try {
    relay = await buildRelay(config, { log });
  } catch (err) {
    fail(err, log);
  }
  // Before listening (and so before /ready answers): the first clients meet a warm process.
  if (config.warmupMs > 0) {
    try {
      const r = await relay.warmUp(config.warmupMs);
      log.info(r, 'warmed up');
    } catch (err) {
      log.warn({ err }, 'start-up warm-up failed (the relay starts anyway)');
    }
  }
  let address: string;
  try {
    address = await relay.app.listen({ port: config.port, host: config.host });
  } catch (err) {
    // the port was taken between the check and now
    await relay.close().catch(() => undefined);
    fail(describeListenError(err as NodeJS.ErrnoException, config.host, config.port));
  }
  const url = address.replace(/^http/, 'ws');
  log.info({ url, db: isPostgresUrl(config.db) ? redactDbUrl(config.db) : config.db, verifier: relay.ctx.verifier.backend }, `Roost relay listening on ${url}`);
  // Local discovery, only when asked for (ROOST_MDNS): after listening, so the port is known.
  const port = (relay.app.server.address() as AddressInfo).port;
  const advert = config.mdns ? startRelayAdvert({ config, identity: relay.identity, port, log }) : undefined;

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: closing connections, flushing writes');
    try {
      await advert?.stop();
      await relay.close();
      log.info('stopped cleanly');
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'unclean shutdown');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) void runRelay();
