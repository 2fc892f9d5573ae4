import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ROOT } from '../helpers/process.js';

export const CLI = join(ROOT, 'dist/cli/main.js');

/** `roost mcp` (the built binary) driven through the SDK's own stdio client. */
export interface StdioBridge {
  client: Client;
  transport: StdioClientTransport;
  pid: number;
  stderr: () => string;
  close(): Promise<void>;
}

/** Spawns `roost mcp --home … --relay …` over stdio and initializes an SDK client against it. */
export async function startStdioBridge(home: string, relays: string[], env: Record<string, string> = {}): Promise<StdioBridge> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'mcp', '--home', home, ...relays.flatMap((r) => ['--relay', r])],
    env: { PATH: process.env.PATH ?? '', ...env },
    stderr: 'pipe',
  });
  let err = '';
  transport.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const client = new Client({ name: 'roost-test', version: '1.0.0' });
  await client.connect(transport);
  return {
    client,
    transport,
    pid: transport.pid!,
    stderr: () => err,
    close: () => client.close().catch(() => undefined),
  };
}

/** Calls a tool; returns the parsed JSON of a successful result, throws with the text of an error result. */
export async function call<T = Record<string, unknown>>(client: Client, name: string, args: Record<string, unknown> = {}): Promise<T> {
  const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = r.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
  if (r.isError) throw new Error(text);
  return JSON.parse(text) as T;
}

/** Calls a tool expected to fail; returns the error text. */
export async function callError(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
  if (!r.isError) throw new Error(`${name} succeeded: ${JSON.stringify(r.content)}`);
  return r.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
}

/** `roost mcp --http 127.0.0.1:0` as a child process; resolves with its URL once it listens. */
export async function startHttpBridge(
  home: string,
  relays: string[],
  extraArgs: string[] = [],
  env: Record<string, string> = {},
): Promise<{ url: string; proc: ChildProcess; stderr: () => string; close(): Promise<void> }> {
  const proc = spawn(process.execPath, [CLI, 'mcp', '--home', home, ...relays.flatMap((r) => ['--relay', r]), '--http', '127.0.0.1:0', ...extraArgs], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /"url":"(http:[^"]+)"/.exec(err);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) => reject(new Error(`roost mcp exited ${code}: ${err}`)));
  });
  return {
    url,
    proc,
    stderr: () => err,
    close: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

/** Waits until a process has exited. */
export function exited(pid: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      try {
        process.kill(pid, 0);
      } catch {
        clearInterval(t);
        resolve();
      }
    }, 20);
  });
}
