import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { defaultAgentHome } from '../client/node/index.js';
import { Bridge } from './mcp/bridge.js';
import { createMcpHttpServer, makeLoopbackGuard } from './mcp/http.js';
import { createMcpServer } from './mcp/server.js';

const HELP = `roost mcp — this agent as a Model Context Protocol server (tools: send, inbox, ack, fetch,
discover, card, whoami, doc_get, doc_update, task_request, task_list, task_status, task_offer,
task_accept, task_update, task_cancel, task_result, decision_propose, decision_vote, decision_tally;
resources: roost://inbox, agent cards, documents)

Usage:
  roost mcp [--home DIR] [--relay URL]...            stdio: stdout is the protocol, logs go to stderr
  roost mcp --http 127.0.0.1:PORT [--token-file F]   streamable HTTP on http://127.0.0.1:PORT/mcp

Options:
  --home DIR          agent home shared with \`roost agent\` (default $ROOST_AGENT_HOME or ~/.roost);
                      the key is created when missing; the bridge's mailbox is DIR/mcp.db
  --relay URL         relay to use; repeat for several (default $ROOST_RELAYS, comma-separated)
  --http HOST:PORT    serve streamable HTTP instead of stdio (loopback only unless you mean it;
                      Host and Origin must name this listener: DNS-rebinding protection)
  --token-file FILE   require "Authorization: Bearer <token>" with the token in FILE
                      (or $ROOST_MCP_TOKEN)
  --allow-origin O    also accept this Origin (e.g. a web client's); repeatable
  -h, --help          this text
See docs/mcp.md.
`;

/** The package version (read once, for the MCP serverInfo). */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** Entry for `roost mcp` from cli/main.ts; returns once the bridge has stopped. */
export async function main(argv: string[]): Promise<void> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        home: { type: 'string' },
        relay: { type: 'string', multiple: true },
        http: { type: 'string' },
        'token-file': { type: 'string' },
        'allow-origin': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`roost mcp: ${(err as Error).message}\n(roost mcp --help lists the options)\n`);
    process.exitCode = 2;
    return;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const env = process.env;
  const home = values.home ?? env.ROOST_AGENT_HOME ?? defaultAgentHome();
  const relays =
    values.relay ??
    (env.ROOST_RELAYS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  if (relays.length === 0) return usage('no relay: pass --relay URL or set ROOST_RELAYS');
  let listen: { host: string; port: number } | undefined;
  if (values.http !== undefined) {
    const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(values.http);
    if (!m || Number(m[2]) > 65535) return usage(`--http wants HOST:PORT, e.g. 127.0.0.1:7448 (got ${JSON.stringify(values.http)})`);
    listen = { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  }
  let token = env.ROOST_MCP_TOKEN || undefined;
  if (values['token-file'] !== undefined) {
    try {
      token = readFileSync(values['token-file'], 'utf8').trim();
    } catch (err) {
      return usage(`cannot read --token-file: ${(err as Error).message}`);
    }
    if (!token) return usage('--token-file is empty');
  }

  // stdout carries the protocol in stdio mode: every log line goes to stderr, as JSON.
  const log = (level: string, msg: string, fields: Record<string, unknown> = {}) => {
    if (level === 'debug' && !env.ROOST_MCP_DEBUG) return;
    process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), msg, ...fields })}\n`);
  };
  const bridge = new Bridge({ home, relays, log });
  if (bridge.keyCreated) log('info', 'created a new agent key', { home, npub: bridge.agent.npub });
  const ver = version();
  let stopping = false;
  let httpServer: ReturnType<typeof createMcpHttpServer> | undefined;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { why });
    httpServer?.close();
    httpServer?.closeAllConnections();
    await bridge.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));

  await bridge.start();
  if (listen === undefined) {
    const transport = new StdioServerTransport();
    transport.onclose = () => void stop('stdin closed');
    process.stdin.once('end', () => void stop('stdin closed'));
    await createMcpServer(bridge, ver).connect(transport);
    log('info', 'mcp on stdio', { npub: bridge.agent.npub, home, relays });
    return;
  }
  const { host, port } = listen;
  let guard = makeLoopbackGuard(host, port, token, values['allow-origin']);
  httpServer = createMcpHttpServer(
    () => guard,
    () => createMcpServer(bridge, ver),
    (msg, fields) => log('info', msg, fields),
  );
  await new Promise<void>((resolve, reject) => {
    httpServer!.once('error', reject);
    httpServer!.listen(port, host, resolve);
  }).catch((err: Error) => {
    log('warn', 'cannot listen', { host, port, message: err.message });
    process.exit(1);
  });
  const actual = (httpServer.address() as AddressInfo).port;
  if (actual !== port) guard = makeLoopbackGuard(host, actual, token, values['allow-origin']);
  const shown = host.includes(':') ? `[${host}]` : host;
  log('info', 'mcp on http', { url: `http://${shown}:${actual}/mcp`, npub: bridge.agent.npub, token: token !== undefined, home, relays });
}

function usage(message: string): void {
  process.stderr.write(`roost mcp: ${message}\n`);
  process.exitCode = 2;
}
