#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { describeConfig } from '../relay/config.js';

// `roost … | head -1` closes the pipe early: the rest of the output is unwanted, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

/** The package version, read from package.json next to dist/ (src and dist are both two levels down). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const HELP = `roost — store-and-forward Nostr relay and agent client

Usage:
  roost relay [--flag value ...]   start the relay (flags: roost relay --help)
  roost agent <command> [...]      agent client: keygen, whoami, send, inbox, tail, discover, card
                                   (roost agent --help)
  roost mcp [--http HOST:PORT]     this agent as an MCP server for LLM hosts (roost mcp --help)
  roost admin METHOD [PARAMS...]   manage a running relay over NIP-86 (roost admin help)
  roost db export|import|stats|backup   data tools (roost db help)
  roost help                       this text
  roost --version                  the version
`;

/** Prints the relay's settings: flag, environment variable, default, description. */
function relayHelp(): string {
  const rows = describeConfig().map(
    (c) =>
      `  ${c.flag.padEnd(26)} ${c.env.padEnd(30)} default ${JSON.stringify(c.default)}\n      ${c.description}${c.allowed ? `\n      allowed: ${c.allowed.join(', ')}` : ''}`,
  );
  return `roost relay — start the relay\n\nEvery setting can be given as a flag or an environment variable:\n${rows.join('\n')}\n`;
}

/** Entry point of the `roost` command. */
export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'relay': {
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(relayHelp());
        return;
      }
      const { runRelay } = await import('../relay/main.js');
      await runRelay(rest);
      return;
    }
    case 'agent': {
      const { main: agentMain } = await import('./agent.js');
      await agentMain(rest);
      return;
    }
    case 'mcp': {
      const { main: mcpMain } = await import('./mcp.js');
      await mcpMain(rest);
      return;
    }
    case 'admin': {
      const { runAdmin } = await import('./admin.js');
      const { processIo } = await import('./args.js');
      process.exitCode = await runAdmin(rest, processIo());
      return;
    }
    case 'db': {
      const { runDb } = await import('./db.js');
      const { processIo } = await import('./args.js');
      process.exitCode = await runDb(rest, processIo());
      return;
    }
    case '--version':
    case '-v':
    case 'version':
      process.stdout.write(`roost ${version()}\n`);
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return;
    default:
      process.stderr.write(`roost: unknown command ${JSON.stringify(command)}\n\n${HELP}`);
      process.exitCode = 2;
  }
}

void main(process.argv.slice(2));
