import { pino } from 'pino';
import { buildRelay } from './app.js';
import { RoostError, loadConfig, readConfigSources } from './config.js';

/** Starts the relay from the environment and flags: config → buildRelay → listen. */
export async function runRelay(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  let config;
  try {
    config = loadConfig(readConfigSources(process.env, argv));
  } catch (err) {
    process.stderr.write(`roost: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = pino({ level: config.logLevel });
  let relay;
  try {
    relay = await buildRelay(config, { log });
  } catch (err) {
    const code = err instanceof RoostError ? err.code : 'ROOST_ERR_START';
    log.fatal({ code, err }, `cannot start: ${(err as Error).message}`);
    process.exit(1);
  }
  const address = await relay.app.listen({ port: config.port, host: config.host });
  const url = address.replace(/^http/, 'ws');
  log.info({ url, db: config.db, verifier: relay.ctx.verifier.backend }, `Roost relay listening on ${url}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: closing connections, flushing writes');
    try {
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
