import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTraceLogFields } from '../../client/index.js';
import type { Agent, InboxMessage } from '../../client/node/index.js';
import { loadNodeRtc } from '../../client/node/rtc.js';
import * as direct from '../../client/transport/index.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { dmTexts, startRecordingAgent, tempDir } from './helpers.js';

// One trace from the sending agent through the relay to the recipient's handler, collected by an
// OTLP/HTTP receiver in this test: each agent exports with its own SDK provider, the relay with its own.
describe('end-to-end traces: agent → relay → agent', () => {
  let receiver: OtlpReceiver;
  let relay: TestRelay;
  const providers: NodeTracerProvider[] = [];
  const homes: Array<{ cleanup: () => void }> = [];
  let alice: { agent: Agent; got: InboxMessage[] };
  let bob: { agent: Agent; got: InboxMessage[] };

  const provider = (service: string) => {
    const p = new NodeTracerProvider({
      resource: resourceFromAttributes({ 'service.name': service }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${receiver.url}/v1/traces` }))],
    });
    providers.push(p);
    return p;
  };
  const agent = async (service: string) => {
    const home = tempDir();
    homes.push(home);
    return startRecordingAgent(home.dir, [relay.url], { tracer: provider(service).getTracer('test') });
  };
  const flushAll = async () => {
    await relay.relay.ctx.tracing.flush();
    await Promise.all(providers.map((p) => p.forceFlush()));
  };
  const spansNamed = (name: string, service: string) => receiver.spans.filter((s) => s.name === name && s.service === service);

  beforeAll(async () => {
    // What an application registering an SDK does (NodeTracerProvider.register(), NodeSDK): the
    // agents' handler spans are active through it. The relay installs none (it passes spans explicitly).
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    receiver = await startOtlpReceiver();
    relay = await startRelay({
      otelTracesExporter: 'otlp',
      otelExporterOtlpEndpoint: receiver.url,
      otelServiceName: 'relay',
      otelTracesSampler: 'parentbased_always_on',
    });
    alice = await agent('alice');
    bob = await agent('bob');
    await Promise.all([alice.agent.whenConnected(), bob.agent.whenConnected()]);
  });
  afterAll(async () => {
    await alice?.agent.close();
    await bob?.agent.close();
    await Promise.all(providers.map((p) => p.shutdown()));
    await relay?.close();
    await receiver?.close();
    for (const h of homes) h.cleanup();
    context.disable();
  });

  it('a public event: client.publish → relay.ingest → the recipient handler, one trace id', async () => {
    const { id } = await alice.agent.publish({ kind: 1, content: 'traced hello', tags: [['p', bob.agent.pubkey]] });
    await waitFor(() => bob.got.some((m) => m.type === 'event' && m.event.id === id), 'bob handles the event');
    let publish: ReceivedSpan | undefined;
    await waitFor(async () => {
      await flushAll();
      publish = spansNamed('client.publish', 'alice').find((s) => s.attributes['nostr.event.id'] === id);
      return publish !== undefined && receiver.spans.some((s) => s.service === 'bob' && s.traceId === publish!.traceId);
    }, 'spans of the three parties');
    const trace = receiver.spans.filter((s) => s.traceId === publish!.traceId);
    const ingest = trace.find((s) => s.service === 'relay' && s.name === 'relay.ingest')!;
    const handle = trace.find((s) => s.service === 'bob' && s.name === 'client.handle')!;
    expect(ingest.parentSpanId).toBe(publish!.spanId);
    expect(handle.parentSpanId).toBe(publish!.spanId);
    expect(ingest.events).toEqual(['verified', 'stored', 'fanned_out']);
    // The tag is on the stored event, exactly as signed.
    const reader = await RawClient.connect(relay.url);
    const [stored] = await reader.req('q', { ids: [id] });
    expect((stored!.tags as string[][]).find((t) => t[0] === 'traceparent')![1]).toBe(`00-${publish!.traceId}-${publish!.spanId}-01`);
    reader.close();
  });

  it('a DM: the recipient handler joins the sender trace; the relay sees no trace context', async () => {
    const { wrapId } = await alice.agent.send(bob.agent.pubkey, 'traced secret');
    await waitFor(() => dmTexts(bob.got).includes('traced secret'), 'bob gets the DM');
    let send: ReceivedSpan | undefined;
    await waitFor(async () => {
      await flushAll();
      send = spansNamed('client.dm.send', 'alice').at(-1);
      return send !== undefined && receiver.spans.some((s) => s.service === 'bob' && s.traceId === send!.traceId);
    }, 'DM spans');
    const trace = receiver.spans.filter((s) => s.traceId === send!.traceId);
    expect(trace.find((s) => s.service === 'bob' && s.name === 'client.handle')!.parentSpanId).toBe(send!.spanId);
    // No relay span carries the sender's trace id; the wrap's ingest is a root of its own and names no event.
    expect(trace.filter((s) => s.service === 'relay')).toEqual([]);
    const wrapIngest = receiver.spans.filter((s) => s.service === 'relay' && s.name === 'relay.ingest' && s.attributes['nostr.private'] === true);
    expect(wrapIngest.length).toBeGreaterThan(0);
    for (const s of wrapIngest) expect(s.parentSpanId).toBe('');
    // The gift wrap as stored (private-inbox reads need the recipient's AUTH; the store is read directly).
    const [wrap] = relay.relay.ctx.store.provides.syncReads!.query([{ ids: [wrapId] }]);
    expect(wrap).toBeDefined();
    expect(JSON.stringify(wrap)).not.toContain(send!.traceId);
  });

  it('a request: the answering handler is a span of the requester trace, and the response names it', async () => {
    bob.agent.onRequest((req) => `echo:${req.content}`);
    const res = await alice.agent.request(bob.agent.pubkey, 'traced ping', { timeoutMs: 5000 });
    expect(res.content).toBe('echo:traced ping');
    let handled: ReceivedSpan | undefined;
    await waitFor(async () => {
      await flushAll();
      handled = spansNamed('client.request', 'bob').at(-1);
      return handled !== undefined;
    }, 'request span');
    const send = spansNamed('client.dm.send', 'alice').find((s) => s.spanId === handled!.parentSpanId);
    expect(send?.traceId).toBe(handled!.traceId);
    expect(res.tags).toContainEqual(['traceparent', `00-${handled!.traceId}-${handled!.spanId}-01`]);
  });

  it('a DM over a direct WebRTC link: the same parent link, and no relay span at all', async () => {
    const rtc = await loadNodeRtc({ bindAddress: '127.0.0.1' });
    const transport = { pingIntervalMs: 200, deadAfterMs: 1500, connectTimeoutMs: 8000 };
    const carol = await agent('carol');
    const dave = await agent('dave');
    carol.agent.enableDirect({ direct, rtc, transport });
    const daveLinks = dave.agent.enableDirect({ direct, rtc, transport });
    await Promise.all([carol.agent.whenConnected(), dave.agent.whenConnected()]);
    await carol.agent.connectDirect(dave.agent.npub);
    await waitFor(() => daveLinks.isDirect(carol.agent.pubkey), 'dave verified carol');
    const sent = await carol.agent.send(dave.agent.pubkey, 'over the link, traced');
    expect(sent.path).toBe('direct');
    await waitFor(() => dmTexts(dave.got).includes('over the link, traced'), 'dave gets it');
    let send: ReceivedSpan | undefined;
    await waitFor(async () => {
      await flushAll();
      send = spansNamed('client.dm.send', 'carol').find((s) => s.attributes['roost.path'] === 'direct');
      return send !== undefined && receiver.spans.some((s) => s.service === 'dave' && s.traceId === send!.traceId);
    }, 'direct DM spans');
    const trace = receiver.spans.filter((s) => s.traceId === send!.traceId);
    const handle = trace.find((s) => s.service === 'dave' && s.name === 'client.handle')!;
    expect(handle.parentSpanId).toBe(send!.spanId);
    expect(handle.attributes['roost.path']).toBe('direct');
    expect(trace.filter((s) => s.service === 'relay')).toEqual([]);
    await carol.agent.close();
    await dave.agent.close();
  });

  it('a public task lifecycle is one trace: requester, relay and worker, every event a child of the request', async () => {
    const requester = await agent('requester');
    const worker = await agent('worker');
    await Promise.all([requester.agent.whenConnected(), worker.agent.whenConnected()]);
    worker.agent.tasks.onRequest(['trace-me'], async (t) => {
      await t.progress('halfway');
      return `done:${t.input}`;
    });
    const { id } = await requester.agent.tasks.request({ capabilities: ['trace-me'], input: 'x' });
    let offerId: string | undefined;
    await waitFor(async () => {
      offerId = (await requester.agent.tasks.status(id)).offers[0]?.id;
      return offerId !== undefined;
    }, 'an offer');
    await requester.agent.tasks.accept(id, offerId!);
    expect((await requester.agent.tasks.result(id, { timeoutMs: 10_000 })).result).toBe('done:x');
    const chain = await requester.agent.tasks.status(id);
    const eventIds = [id, offerId!, ...chain.steps.map((s) => s.id)];
    expect(chain.steps.map((s) => s.state)).toEqual(['working', 'working', 'working', 'completed']);
    let request: ReceivedSpan | undefined;
    await waitFor(async () => {
      await flushAll();
      request = spansNamed('client.task.request', 'requester').find((s) => s.attributes['roost.task.id'] === id);
      const ingested = receiver.spans.filter((s) => s.service === 'relay' && eventIds.includes(s.attributes['nostr.event.id'] as string));
      return request !== undefined && ingested.length === eventIds.length;
    }, 'spans of the whole lifecycle');
    const traceId = request!.traceId;
    // The relay ingested every event of the task inside the requester's trace.
    for (const eventId of eventIds) {
      const ingest = receiver.spans.find((s) => s.service === 'relay' && s.attributes['nostr.event.id'] === eventId)!;
      expect(ingest.traceId, eventId).toBe(traceId);
    }
    const inTrace = receiver.spans.filter((s) => s.traceId === traceId);
    const byId = new Map(inTrace.map((s) => [s.spanId, s]));
    const offer = inTrace.find((s) => s.name === 'client.task.offer' && s.service === 'worker')!;
    expect(offer.parentSpanId).toBe(request!.spanId);
    const run = inTrace.find((s) => s.name === 'client.task.run' && s.service === 'worker')!;
    expect(run.parentSpanId).toBe(request!.spanId);
    const steps = inTrace.filter((s) => s.name === 'client.task.step');
    expect(steps.map((s) => `${s.service}:${s.attributes['roost.task.state']}`).sort()).toEqual([
      'requester:working',
      'worker:completed',
      'worker:working',
      'worker:working',
    ]);
    // The progress and the result are children of the run; the acceptance and the start of the request.
    for (const s of steps) expect([request!.spanId, run.spanId]).toContain(s.parentSpanId);
    expect(steps.filter((s) => s.parentSpanId === run.spanId)).toHaveLength(2);
    // Every span of the trace hangs from the request (no dangling parent).
    for (const s of inTrace) if (s !== request) expect(byId.has(s.parentSpanId), s.name).toBe(true);
    await requester.agent.close();
    await worker.agent.close();
  });

  it('a private task lifecycle is one trace between the two agents; the relay sees none of it', async () => {
    const requester = await agent('p-requester');
    const worker = await agent('p-worker');
    await Promise.all([requester.agent.whenConnected(), worker.agent.whenConnected()]);
    worker.agent.tasks.onRequest(['secret-work'], (t) => `ok:${t.input}`);
    const { id } = await requester.agent.tasks.request({ capabilities: ['secret-work'], input: 'y', worker: worker.agent.pubkey, private: true });
    expect((await requester.agent.tasks.result(id, { timeoutMs: 10_000 })).result).toBe('ok:y');
    let request: ReceivedSpan | undefined;
    await waitFor(async () => {
      await flushAll();
      request = spansNamed('client.task.request', 'p-requester').find((s) => s.attributes['roost.task.id'] === id);
      return (
        request !== undefined &&
        receiver.spans.some((s) => s.traceId === request!.traceId && s.name === 'client.task.step' && s.attributes['roost.task.state'] === 'completed')
      );
    }, 'private task spans');
    const inTrace = receiver.spans.filter((s) => s.traceId === request!.traceId);
    expect(inTrace.find((s) => s.service === 'p-worker' && s.name === 'client.task.run')!.parentSpanId).toBe(request!.spanId);
    expect(inTrace.filter((s) => s.name === 'client.task.step').map((s) => s.attributes['roost.task.state'])).toEqual(
      expect.arrayContaining(['working', 'completed']),
    );
    // The DMs carrying the task are children of its spans, and no relay span is in the trace.
    expect(inTrace.filter((s) => s.name === 'client.dm.send').length).toBeGreaterThanOrEqual(3);
    expect(inTrace.filter((s) => s.service === 'relay')).toEqual([]);
    expect(JSON.stringify(relay.relay.ctx.store.query([{ kinds: [1059] }]))).not.toContain(request!.traceId);
    await requester.agent.close();
    await worker.agent.close();
  });

  it('a decision is one trace: the proposal, each ballot and the result, and the relay ingest of each', async () => {
    const proposer = await agent('proposer');
    const voter = await agent('voter');
    await Promise.all([proposer.agent.whenConnected(), voter.agent.whenConnected()]);
    voter.agent.decisions.onProposal(() => 'yes');
    const proposal = await proposer.agent.decisions.propose({
      question: 'traced?',
      options: ['yes', 'no'],
      electorate: { type: 'pubkeys', pubkeys: [proposer.agent.pubkey, voter.agent.pubkey] },
      rule: { type: 'majority' },
      quorum: 1,
      vetoHolders: [],
      deadline: Math.floor(Date.now() / 1000) + 60,
    });
    expect(proposal.trace).toBeDefined();
    await waitFor(async () => (await proposer.agent.decisions.tally(proposal.id)).turnout === 1, 'the ballot');
    await proposer.agent.decisions.publishResult(proposal.id);
    let spans: ReceivedSpan[] = [];
    await waitFor(async () => {
      await flushAll();
      spans = receiver.spans.filter((s) => s.traceId === proposal.trace!.traceId);
      return (
        ['client.decision.vote', 'client.decision.result'].every((n) => spans.some((s) => s.name === n)) &&
        spans.filter((s) => s.name === 'relay.ingest').length === 3
      );
    }, 'decision spans');
    const propose = spans.find((s) => s.name === 'client.decision.propose')!;
    expect(propose.spanId).toBe(proposal.trace!.spanId);
    expect(spans.find((s) => s.name === 'client.decision.vote')).toMatchObject({ service: 'voter', parentSpanId: propose.spanId });
    expect(spans.find((s) => s.name === 'client.decision.result')).toMatchObject({ service: 'proposer', parentSpanId: propose.spanId });
    expect(
      spans
        .filter((s) => s.name === 'relay.ingest')
        .map((s) => s.attributes['nostr.event.kind'])
        .sort(),
    ).toEqual([4343, 4344, 4345]);
    await proposer.agent.close();
    await voter.agent.close();
  });

  it("the application's pino lines inside a handler carry the handler span's trace_id and span_id", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino(
      { mixin: getTraceLogFields },
      new Writable({
        write(chunk, _enc, done) {
          for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
          done();
        },
      }),
    );
    const home = tempDir();
    homes.push(home);
    const carol = await startRecordingAgent(home.dir, [relay.url], { tracer: provider('log-carol').getTracer('test') });
    carol.agent.onMessage((m) => log.info({ from: m.type === 'dm' ? m.from : '' }, 'handled'));
    await alice.agent.send(carol.agent.pubkey, 'log me');
    await waitFor(() => lines.some((l) => l.msg === 'handled'), 'carol handled it');
    log.info('outside');
    let handle: ReceivedSpan | undefined;
    await waitFor(async () => {
      await flushAll();
      handle = spansNamed('client.handle', 'log-carol')[0];
      return handle !== undefined;
    }, 'carol handle span');
    expect(lines.find((l) => l.msg === 'handled')).toMatchObject({ trace_id: handle!.traceId, span_id: handle!.spanId });
    expect(lines.find((l) => l.msg === 'outside')!.trace_id).toBeUndefined();
    await carol.agent.close();
  });

  it('without a tracer (no SDK registered) events carry no traceparent', async () => {
    const home = tempDir();
    homes.push(home);
    const plain = await startRecordingAgent(home.dir, [relay.url]);
    try {
      const { id } = await plain.agent.publish({ kind: 1, content: 'untraced' });
      const reader = await RawClient.connect(relay.url);
      const [stored] = await reader.req('u', { ids: [id] });
      expect(stored!.tags).toEqual([]);
      reader.close();
    } finally {
      await plain.agent.close();
    }
  });
});
