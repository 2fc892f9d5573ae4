import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCode, McpError, SubscribeRequestSchema, UnsubscribeRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { ClientError, DecisionKind, getNpub, parsePubkey, TaskKind, type AgentInfo, type DirectMessage } from '../../client/node/index.js';
import type { NostrEvent } from '../../shared/event.js';
import type { Json } from '../../client/crdt/index.js';
import type { Bridge } from './bridge.js';
import type { MailEntry } from './mailbox.js';
import { registerDecisionTools, registerTaskTools } from './work.js';

/** Characters of a message shown in an inbox header; `fetch` gives the rest. */
export const PREVIEW_CHARS = 200;
/** Default and largest slice of one message's content returned by `fetch`. */
export const FETCH_CHARS = 8000;
export const FETCH_MAX_CHARS = 32_000;
/** Largest document JSON returned by `doc_get` (and the documents resource). */
export const DOC_MAX_CHARS = 16_000;
/** Largest text accepted by `send`. */
export const SEND_MAX_CHARS = 60_000;

export const INBOX_URI = 'roost://inbox';

const pubkeyRef = z
  .string()
  .min(1, 'give an npub1…, 64 hex characters, or an agent name from discover')
  .max(200)
  .describe('Recipient: an npub1… key, 64 hex characters, or the exact name on an agent card (see discover).');

const docName = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[\w.:-]+$/, 'a document name is letters, digits, and . _ : - (e.g. "board")')
  .describe('Document name, e.g. "board".');
const docOwner = z.string().max(200).optional().describe("Owner's npub/hex when the document belongs to another agent; default: this agent.");

/** Builds the MCP server for one session (stdio, or one HTTP session); every session shares the bridge. */
export function createMcpServer(bridge: Bridge, version: string): McpServer {
  const server = new McpServer(
    { name: 'roost', title: 'Roost agent mesh', version },
    {
      capabilities: { resources: { subscribe: true, listChanged: false }, tools: {}, logging: {} },
      instructions:
        'You are an agent on the Roost mesh. Messages to you wait in a durable inbox: call `inbox`, handle each message, then `ack` with the `next` value it gave (until you ack, the same messages come back, even after a restart). Reply with `send` and `reply_to`. Use `discover` to find agents by capability and `whoami` for your own address. Work between agents is signed tasks: ask with `task_request`, follow with `task_status`/`task_result`; as a worker, find work with `task_list` (role "open" or "worker") and report with `task_update`. Group decisions: `decision_propose`, `decision_vote`, `decision_tally`. Task steps, offers and proposals addressed to you also arrive in `inbox` (with a `task` or `proposal` id).',
    },
  );
  const agent = bridge.agent;
  const text = (value: unknown): CallToolResult => ({ content: [{ type: 'text', text: JSON.stringify(value) }] });

  server.registerTool(
    'whoami',
    {
      title: 'Who am I',
      description: "This agent's address on the mesh (npub: give it to others so they can message you), its relays and the state of its inbox and outbox.",
      inputSchema: {},
      annotations: { readOnlyHint: true },
    },
    async () =>
      text({
        npub: agent.npub,
        pubkey: agent.pubkey,
        relays: agent.relays,
        connected: agent.connectedRelays,
        unacked: bridge.mailbox.countAfter(bridge.mailbox.acked),
        acked: bridge.mailbox.acked,
        outbox: agent.outboxSize,
      }),
  );

  server.registerTool(
    'send',
    {
      title: 'Send a message',
      description:
        'Send an end-to-end encrypted direct message to another agent. Returns once the relays stored it (the recipient may be offline; it is delivered when it comes back). To answer a message from your inbox, pass its seq as reply_to (the recipient is then its sender, and a request is answered). Set wait_for_reply to send a request and wait up to timeout_s seconds for the answer.',
      inputSchema: {
        to: pubkeyRef.optional(),
        text: z.string().min(1, 'text is empty: write the message').max(SEND_MAX_CHARS).describe('The message.'),
        reply_to: z.number().int().positive().optional().describe('seq of an inbox message this answers (from inbox/fetch).'),
        wait_for_reply: z.boolean().optional().describe('Send as a request and wait for the answer (default false).'),
        timeout_s: z.number().positive().max(300).optional().describe('How long to wait for the relays (and the answer, with wait_for_reply); default 30.'),
      },
    },
    async ({ to, text: body, reply_to, wait_for_reply, timeout_s }) => {
      const timeoutMs = (timeout_s ?? 30) * 1000;
      if (reply_to !== undefined) {
        const entry = bridge.mailbox.get({ seq: reply_to });
        if (!entry) throw new ClientError('ROOST_ERR_BAD_INPUT', `no message with seq ${reply_to} in the inbox (see inbox)`);
        if (entry.message.type !== 'dm')
          throw new ClientError('ROOST_ERR_BAD_INPUT', `message ${reply_to} is an event, not a direct message: send to its author with "to"`);
        const dm = entry.message;
        if (to !== undefined && (await bridge.resolveRecipient(to)) !== dm.from)
          throw new ClientError('ROOST_ERR_BAD_INPUT', `reply_to ${reply_to} was sent by ${getNpub(dm.from)}, not by "${to}": leave "to" out when replying`);
        const r = await agent.reply(dm, body, { timeoutMs });
        return text({ sent: r.id, to: getNpub(dm.from), in_reply_to: dm.id, answered_request: dm.requestId !== undefined, path: r.path });
      }
      if (to === undefined) throw new ClientError('ROOST_ERR_BAD_INPUT', 'say who gets it: "to" (npub, hex or agent name), or "reply_to" (an inbox seq)');
      const recipient = await bridge.resolveRecipient(to);
      if (wait_for_reply) {
        const res = await agent.request(recipient, body, { timeoutMs });
        return text({ to: getNpub(recipient), reply: { id: res.id, from: getNpub(res.from), at: iso(res.createdAt), ...capped(res.content, FETCH_CHARS) } });
      }
      const r = await agent.send(recipient, body, { timeoutMs });
      return text({ sent: r.id, to: getNpub(recipient), path: r.path, relays: r.result?.relays.map((x) => x.relay) ?? [] });
    },
  );

  server.registerTool(
    'inbox',
    {
      title: 'Read the inbox',
      description:
        'Messages addressed to you that you have not acknowledged yet, oldest first, as compact headers (preview of the first 200 characters; use fetch for the whole message). After handling them, call ack with the returned "next": until then the same messages are returned again (also after a restart), so nothing is lost if you stop mid-way. wait_s waits for new mail when there is none.',
      inputSchema: {
        limit: z.number().int().min(1).max(50).optional().describe('At most this many messages (default 20).'),
        after: z
          .number()
          .int()
          .min(0)
          .optional()
          .describe('List messages after this seq instead of after the acknowledged cursor (to page through a long inbox).'),
        wait_s: z.number().min(0).max(60).optional().describe('If nothing is waiting, wait up to this many seconds for a message (default 0).'),
      },
      annotations: { readOnlyHint: true },
    },
    async ({ limit, after, wait_s }) => {
      await bridge.whenCaughtUp(5000);
      const from = after ?? bridge.mailbox.acked;
      if (wait_s && bridge.mailbox.countAfter(from) === 0) await bridge.waitForMail(wait_s * 1000);
      return text(inboxPage(bridge, from, limit ?? 20));
    },
  );

  server.registerTool(
    'ack',
    {
      title: 'Acknowledge messages',
      description:
        'Mark every message up to and including seq up_to as handled (pass the "next" value from inbox). Acknowledged messages no longer appear in inbox; fetch still finds them for 7 days.',
      inputSchema: { up_to: z.number().int().min(0).describe('The "next" value from inbox, or any seq up to which all is handled.') },
      annotations: { idempotentHint: true },
    },
    async ({ up_to }) => {
      const last = bridge.mailbox.last;
      if (up_to > last)
        throw new ClientError('ROOST_ERR_BAD_INPUT', `up_to ${up_to} is beyond the newest message (seq ${last}); pass the "next" value from inbox`);
      const acked = bridge.mailbox.ack(up_to);
      return text({ acked, remaining: bridge.mailbox.countAfter(acked) });
    },
  );

  server.registerTool(
    'fetch',
    {
      title: 'Fetch one message',
      description: 'One message in full (sender, time, tags, content). Long content comes in slices: pass offset = next_offset to read on.',
      inputSchema: {
        seq: z.number().int().positive().optional().describe('The message seq from inbox.'),
        id: z
          .string()
          .regex(/^[0-9a-fA-F]{8,64}$/, 'an id is 8 to 64 hex characters (a unique prefix of the message id)')
          .optional()
          .describe('Or its id (at least the first 8 hex characters).'),
        offset: z.number().int().min(0).optional().describe('Character offset into the content (default 0).'),
        max_chars: z.number().int().min(100).max(FETCH_MAX_CHARS).optional().describe(`Characters of content to return (default ${FETCH_CHARS}).`),
      },
      annotations: { readOnlyHint: true },
    },
    async ({ seq, id, offset, max_chars }) => {
      if (seq === undefined && id === undefined) throw new ClientError('ROOST_ERR_BAD_INPUT', 'give the message seq (from inbox) or its id');
      const entry = bridge.mailbox.get(seq !== undefined ? { seq } : { id: id! });
      if (!entry)
        throw new ClientError('ROOST_ERR_BAD_INPUT', `no message ${seq !== undefined ? `with seq ${seq}` : `with id ${id}`} (ids need a unique prefix)`);
      return text(fullMessage(bridge, entry, offset ?? 0, max_chars ?? FETCH_CHARS));
    },
  );

  server.registerTool(
    'discover',
    {
      title: 'Discover agents',
      description:
        'Find agents on the mesh offering every capability listed (none: all agents with a card), with presence: "online" (connected now), "asleep" (not connected but wakeable by push: messages wake it), "offline" (messages wait for it), and when it was last seen.',
      inputSchema: {
        capabilities: z.array(z.string().min(1).max(100)).max(10).optional().describe('Capabilities every result must offer, e.g. ["translate"].'),
        limit: z.number().int().min(1).max(50).optional().describe('At most this many agents (default 20).'),
      },
      annotations: { readOnlyHint: true },
    },
    async ({ capabilities, limit }) => {
      const found = await bridge.discover(capabilities ?? []);
      const max = limit ?? 20;
      return text({ agents: found.slice(0, max).map(agentSummary), more: Math.max(0, found.length - max) });
    },
  );

  server.registerTool(
    'card',
    {
      title: 'Publish my card',
      description: "Publish (replace) this agent's card so others find it with discover: a name, a one-line description and the capabilities it offers.",
      inputSchema: {
        name: z.string().min(1, 'name is empty').max(100).describe('Short name others can address you by.'),
        description: z.string().max(1000).optional().describe('What you do, in a sentence.'),
        capabilities: z.array(z.string().min(1).max(100)).max(32).optional().describe('Capabilities you offer, e.g. ["summarise", "translate"].'),
        version: z.string().max(50).optional(),
      },
    },
    async ({ name, description, capabilities, version: v }) => {
      const r = await agent.publishCard({ name, description: description ?? '', capabilities: capabilities ?? [], version: v ?? '' }, { timeoutMs: 10_000 });
      return text({ published: r.id, npub: agent.npub, relays: r.relays.map((x) => x.relay) });
    },
  );

  server.registerTool(
    'doc_get',
    {
      title: 'Read a shared document',
      description: `A shared CRDT document (maps, sets, counters) as JSON, synced from the relays. Output is capped at ${DOC_MAX_CHARS} characters; pass part (e.g. "maps.tasks") to read one map or set of a large document.`,
      inputSchema: {
        name: docName,
        owner: docOwner,
        part: z
          .string()
          .max(200)
          .optional()
          .describe('Only this part, as a dotted path: "maps", "maps.tasks", "sets.tags", "counters", "registers", "status".'),
      },
      annotations: { readOnlyHint: true },
    },
    async ({ name, owner, part }) => text(await readDoc(bridge, name, owner, part)),
  );

  const docOp = z.discriminatedUnion('op', [
    z.object({ op: z.literal('set'), map: z.string().min(1).max(100), key: z.string().min(1).max(200), value: z.json() }),
    z.object({ op: z.literal('delete'), map: z.string().min(1).max(100), key: z.string().min(1).max(200) }),
    z.object({ op: z.literal('add'), set: z.string().min(1).max(100), value: z.string().max(1000) }),
    z.object({ op: z.literal('remove'), set: z.string().min(1).max(100), value: z.string().max(1000) }),
    z.object({ op: z.literal('increment'), counter: z.string().min(1).max(100), key: z.string().min(1).max(200), by: z.number().int().optional() }),
  ]);
  server.registerTool(
    'doc_update',
    {
      title: 'Change a shared document',
      description:
        'Apply changes to a shared CRDT document in one transaction; they reach every other replica through the relays (concurrent edits merge). ops: {"op":"set","map","key","value"}, {"op":"delete","map","key"}, {"op":"add"|"remove","set","value"}, {"op":"increment","counter","key","by"}.',
      inputSchema: { name: docName, owner: docOwner, ops: z.array(docOp).min(1, 'ops is empty: give at least one change').max(50) },
    },
    async ({ name, owner, ops }) => {
      const doc = await agent.doc(name, owner === undefined ? {} : { owner: parsePubkey(owner) });
      await doc.whenSynced(5000);
      doc.transact(() => {
        for (const op of ops) {
          if (op.op === 'set') doc.map(op.map).set(op.key, op.value as Json);
          else if (op.op === 'delete') doc.map(op.map).delete(op.key);
          else if (op.op === 'add') doc.set(op.set).add(op.value);
          else if (op.op === 'remove') doc.set(op.set).remove(op.value);
          else doc.counters(op.counter).increment(op.key, op.by ?? 1);
        }
      });
      await doc.flush();
      return text({ document: doc.address, applied: ops.length, chars: JSON.stringify(doc.toJSON()).length });
    },
  );

  registerTaskTools(server, bridge);
  registerDecisionTools(server, bridge);

  // Resources: the inbox (subscribable), agent cards and documents.
  server.registerResource(
    'inbox',
    INBOX_URI,
    { title: 'Inbox', description: 'Unacknowledged messages (headers); subscribe to be told when mail arrives.', mimeType: 'application/json' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(inboxPage(bridge, bridge.mailbox.acked, 50)) }] }),
  );
  server.registerResource(
    'agent-card',
    new ResourceTemplate('roost://agents/{pubkey}', {
      list: async () => ({
        resources: (await bridge.discover([]))
          .slice(0, 50)
          .map((a) => ({ uri: `roost://agents/${a.pubkey}`, name: a.name || a.npub, mimeType: 'application/json' })),
      }),
    }),
    { title: 'Agent card', description: "An agent's card and presence (roost://agents/<hex pubkey>).", mimeType: 'application/json' },
    async (uri, vars) => {
      const pk = asParam(() => parsePubkey(String(vars.pubkey)));
      const found = (await bridge.discover([])).find((a) => a.pubkey === pk);
      if (!found) throw new McpError(ErrorCode.InvalidParams, `no card for ${getNpub(pk)} on the relays`);
      return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(agentSummary(found)) }] };
    },
  );
  server.registerResource(
    'document',
    new ResourceTemplate('roost://docs/{owner}/{name}', { list: undefined }),
    { title: 'Shared document', description: 'A shared CRDT document as JSON (roost://docs/<owner hex or "me">/<name>).', mimeType: 'application/json' },
    async (uri, vars) => {
      const owner = String(vars.owner);
      const doc = await readDoc(bridge, String(vars.name), owner === 'me' ? undefined : owner, undefined).catch((err: Error) => {
        throw err instanceof ClientError ? new McpError(ErrorCode.InvalidParams, err.message) : err;
      });
      return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(doc) }] };
    },
  );

  // resources/subscribe: only the inbox changes on its own; its updates are pushed while subscribed.
  let unsubscribe: (() => void) | undefined;
  server.server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    if (req.params.uri !== INBOX_URI)
      throw new McpError(ErrorCode.InvalidParams, `only ${INBOX_URI} can be subscribed to (agent cards and documents are read on demand)`);
    unsubscribe ??= bridge.onMail(() => void server.server.sendResourceUpdated({ uri: INBOX_URI }).catch(() => undefined));
    return {};
  });
  server.server.setRequestHandler(UnsubscribeRequestSchema, async () => {
    unsubscribe?.();
    unsubscribe = undefined;
    return {};
  });
  server.server.onclose = () => unsubscribe?.();
  return server;
}

/** Runs `fn`; a bad-input error becomes an MCP invalid-params error (resource reads answer JSON-RPC errors). */
function asParam<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new McpError(ErrorCode.InvalidParams, (err as Error).message);
  }
}

const iso = (sec: number) => new Date(sec * 1000).toISOString().replace('.000Z', 'Z');

/** `content` cut to `max` characters, with its full length and whether it was cut. */
function capped(content: string, max: number): { content: string; chars: number; truncated?: true } {
  return content.length <= max ? { content, chars: content.length } : { content: content.slice(0, max), chars: content.length, truncated: true };
}

/** One inbox page: compact headers, the `next` cursor to ack, and how many more wait. */
function inboxPage(bridge: Bridge, after: number, limit: number) {
  const entries = bridge.mailbox.list(after, limit);
  const next = entries.at(-1)?.seq ?? after;
  return {
    messages: entries.map((e) => header(bridge, e)),
    next,
    more: bridge.mailbox.countAfter(next),
    acked: bridge.mailbox.acked,
  };
}

function header(bridge: Bridge, e: MailEntry) {
  const m = e.message;
  if (m.type === 'dm') {
    const name = bridge.nameOf(m.from);
    return {
      seq: e.seq,
      from: getNpub(m.from),
      ...(name ? { from_name: name } : {}),
      at: iso(m.createdAt),
      ...(m.requestId ? { request: true } : {}),
      ...(m.inReplyTo ? { reply: true } : {}),
      preview: m.content.length > PREVIEW_CHARS ? `${m.content.slice(0, PREVIEW_CHARS)}…` : m.content,
      chars: m.content.length,
    };
  }
  return {
    seq: e.seq,
    kind: m.event.kind,
    ...workLabel(m.event),
    from: getNpub(m.event.pubkey),
    at: iso(m.event.created_at),
    preview: m.event.content.slice(0, PREVIEW_CHARS),
    chars: m.event.content.length,
  };
}

/** Names a task or decision event in an inbox header, with the id its tools take. */
function workLabel(ev: NostrEvent): Record<string, string> {
  const root = ev.tags.find((t) => t[0] === 'e' && t[3] === 'root')?.[1] ?? '';
  switch (ev.kind) {
    case TaskKind.Request:
      return { type: 'task_request', task: ev.id, hint: 'addressed to you: see task_status' };
    case TaskKind.Offer:
      return { type: 'task_offer', task: root, hint: 'an offer on your task: task_accept' };
    case TaskKind.Step:
      return { type: 'task_step', task: root, state: ev.tags.find((t) => t[0] === 'status')?.[1] ?? '', hint: 'see task_status' };
    case DecisionKind.Proposal:
      return { type: 'proposal', proposal: ev.id, hint: 'you may vote: decision_vote' };
    case DecisionKind.Ballot:
      return { type: 'ballot', proposal: root, hint: 'see decision_tally' };
    default:
      return {};
  }
}

function fullMessage(bridge: Bridge, e: MailEntry, offset: number, max: number) {
  const m = e.message;
  const content = m.type === 'dm' ? m.content : m.event.content;
  const slice = content.slice(offset, offset + max);
  const rest = offset + slice.length < content.length ? { next_offset: offset + slice.length } : {};
  const acked = e.seq <= bridge.mailbox.acked;
  if (m.type === 'dm') {
    const dm: DirectMessage = m;
    const name = bridge.nameOf(dm.from);
    return {
      seq: e.seq,
      id: dm.id,
      from: getNpub(dm.from),
      ...(name ? { from_name: name } : {}),
      at: iso(dm.createdAt),
      ...(dm.requestId ? { request: true, hint: 'a request: answer with send {reply_to: seq}' } : {}),
      ...(dm.inReplyTo ? { in_reply_to: dm.inReplyTo } : {}),
      tags: dm.tags.slice(0, 20),
      acked,
      chars: content.length,
      offset,
      content: slice,
      ...rest,
    };
  }
  const { content: _c, sig: _s, ...ev } = m.event;
  return { seq: e.seq, event: { ...ev, tags: ev.tags.slice(0, 20) }, acked, chars: content.length, offset, content: slice, ...rest };
}

function agentSummary(a: AgentInfo) {
  return {
    name: a.name,
    npub: a.npub,
    description: a.description.length > 300 ? `${a.description.slice(0, 300)}…` : a.description,
    capabilities: a.capabilities.slice(0, 32),
    presence: a.presence,
    last_seen: a.lastSeen === undefined ? null : iso(a.lastSeen),
    wakeable: a.wakeable,
  };
}

async function readDoc(bridge: Bridge, name: string, owner: string | undefined, part: string | undefined) {
  const doc = await bridge.agent.doc(name, owner === undefined ? {} : { owner: parsePubkey(owner) });
  const synced = await doc.whenSynced(5000);
  const all = doc.toJSON();
  let value: unknown = all;
  for (const key of part === undefined ? [] : part.split('.')) {
    if (value === null || typeof value !== 'object' || !(key in value))
      throw new ClientError('ROOST_ERR_BAD_INPUT', `document ${name} has no part "${part}" (top level: ${Object.keys(all).join(', ')}; e.g. "maps.tasks")`);
    value = (value as Record<string, unknown>)[key];
  }
  const json = JSON.stringify(value);
  if (json.length <= DOC_MAX_CHARS) return { document: doc.address, synced, value };
  const sizes: Record<string, number> = {};
  if (value !== null && typeof value === 'object')
    for (const [k, v] of Object.entries(value).slice(0, 100)) sizes[part === undefined ? k : `${part}.${k}`] = JSON.stringify(v).length;
  return {
    document: doc.address,
    synced,
    truncated: true,
    chars: json.length,
    parts_chars: sizes,
    hint: 'too large: call doc_get with part set to one of parts_chars',
  };
}
