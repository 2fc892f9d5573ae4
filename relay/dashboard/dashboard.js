// Roost operator dashboard: reads one sample a second from /dashboard/stream (server-sent events)
// and draws the figures and an SVG chart. No dependencies; every text is set with textContent.
// biome-ignore lint/suspicious/noRedundantUseStrict: index.html loads this file as a classic script, not a module, so the directive is not redundant.
'use strict';

const HISTORY_SECONDS = 180;
const SVG_NS = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);
let history = [];

const int = new Intl.NumberFormat('en-US');
const oneDecimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

function fmtCount(n) {
  return n === undefined || n === null ? '–' : int.format(Math.round(n));
}

function fmtRate(n) {
  if (n === undefined) return '–';
  return n >= 100 ? int.format(Math.round(n)) : oneDecimal.format(n);
}

function fmtBytes(n) {
  if (n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : oneDecimal.format(n)} ${units[i]}`;
}

function fmtMs(ms) {
  if (ms === undefined || ms === null) return '–';
  if (ms >= 1e6) return '> 10 s';
  return ms < 1 ? `≤ ${ms} ms` : `≤ ${int.format(ms)} ms`;
}

function fmtDuration(s) {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
}

function setText(id, text) {
  const el = $(id);
  if (el && el.textContent !== text) el.textContent = text;
}

/** Fills a <dl> with label → value rows. */
function fillFigures(dl, rows) {
  dl.replaceChildren();
  for (const [label, value, bad] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = value;
    if (bad) dd.className = 'bad';
    dl.append(dt, dd);
  }
}

const words = (key) =>
  key
    .replace(/([A-Z])/g, ' $1')
    .toLowerCase()
    .replace(/^./, (c) => c.toUpperCase());

/** A mailbox or wake section: its figures, "not enabled", or its error. */
function renderSection(name, section) {
  const off = $(`${name}-off`);
  const dl = $(name);
  if (!section.enabled) {
    off.hidden = false;
    off.textContent = 'not enabled';
    dl.replaceChildren();
    return;
  }
  if (section.error) {
    off.hidden = false;
    off.textContent = `unavailable: ${section.error}`;
    dl.replaceChildren();
    return;
  }
  off.hidden = true;
  fillFigures(
    dl,
    Object.entries(section.figures).map(([k, v]) => [words(k), fmtCount(v), name === 'wake' && k === 'failed' && v > 0]),
  );
}

function renderRejections(rejections) {
  const list = $('rejections');
  const entries = Object.entries(rejections).sort((a, b) => b[1] - a[1]);
  $('rejections-none').hidden = entries.length > 0;
  const max = Math.max(1, ...entries.map(([, n]) => n));
  list.replaceChildren(
    ...entries.map(([reason, n]) => {
      const li = document.createElement('li');
      const label = document.createElement('span');
      label.textContent = reason;
      const bar = document.createElement('div');
      bar.className = 'bar';
      const fill = document.createElement('span');
      fill.style.width = `${Math.max(2, (100 * n) / max)}%`;
      bar.append(fill);
      const count = document.createElement('span');
      count.className = 'n';
      count.textContent = fmtCount(n);
      li.append(label, bar, count);
      return li;
    }),
  );
}

function renderErrors(errors) {
  const table = $('recent-errors');
  $('errors-none').hidden = errors.length > 0;
  table.hidden = errors.length === 0;
  const body = table.tBodies[0];
  body.replaceChildren(
    ...errors
      .slice()
      .reverse()
      .map((e) => {
        const tr = document.createElement('tr');
        const cells = [new Date(e.at).toLocaleTimeString(), e.source, e.code ?? '', e.message];
        cells.forEach((text, i) => {
          const td = document.createElement('td');
          td.textContent = text;
          if (i === 3) td.className = 'msg';
          tr.append(td);
        });
        return tr;
      }),
  );
}

function render(f) {
  document.title = `${f.relay.name} — Roost dashboard`;
  setText('relay-name', f.relay.name);
  setText('relay-version', `v${f.relay.version}`);
  setText('write-policy', `writes: ${f.relay.writePolicy}`);
  setText('uptime', fmtDuration(f.relay.uptimeSeconds));
  setText('connections', fmtCount(f.connections));
  setText('subscriptions', `${fmtCount(f.subscriptions)} subscription${f.subscriptions === 1 ? '' : 's'}`);
  setText('agents', fmtCount(f.agentsOnline));
  setText('eps', fmtRate(f.rates.received));
  setText('sps', fmtRate(f.rates.stored));
  setText('stored', fmtCount(f.storage ? f.storage.events : undefined));
  setText('received', fmtCount(f.totals.eventsReceived));
  setText('db-size', fmtBytes(f.storage ? f.storage.bytes : undefined));
  setText('wal-size', fmtBytes(f.storage ? f.storage.walBytes : undefined));
  setText('errors', fmtCount(f.totals.errors));
  setText('ok-p50', fmtMs(f.latency.okP50));
  setText('ok-p99', fmtMs(f.latency.okP99));
  setText('eose-p50', fmtMs(f.latency.eoseP50));
  setText('eose-p99', fmtMs(f.latency.eoseP99));
  setText('dps', fmtRate(f.rates.delivered));
  setText('rps', fmtRate(f.rates.reqs));
  renderSection('mailbox', f.mailbox);
  renderSection('wake', f.wake);
  renderRejections(f.rejections);
  fillFigures($('moderation'), [
    ['Write policy', f.relay.writePolicy],
    ['Banned pubkeys', fmtCount(f.moderation.bannedPubkeys)],
    ['Allowed pubkeys', fmtCount(f.moderation.allowedPubkeys)],
    ['Banned events', fmtCount(f.moderation.bannedEvents)],
    ['Blocked IPs', fmtCount(f.moderation.blockedIps)],
    ['Events rejected', fmtCount(f.totals.eventsRejected)],
    ['Slow clients cut', fmtCount(f.totals.slowClientsCut), f.totals.slowClientsCut > 0],
  ]);
  renderErrors(f.recentErrors);
}

/** A "nice" axis maximum: 1, 2 or 5 times a power of ten, at least the value. */
function niceCeil(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function drawChart() {
  const chart = $('chart');
  const W = 900;
  const H = 240;
  const left = 48;
  const bottom = 20;
  const top = 8;
  const now = history.length ? history[history.length - 1].at : Date.now();
  const from = now - HISTORY_SECONDS * 1000;
  const pts = history.filter((p) => p.at >= from);
  const max = niceCeil(Math.max(0, ...pts.map((p) => Math.max(p.received, p.stored, p.delivered))));
  const x = (at) => left + ((at - from) / (HISTORY_SECONDS * 1000)) * (W - left - 4);
  const y = (v) => top + (1 - v / max) * (H - top - bottom);
  const nodes = [];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    nodes.push(svg('line', { class: 'grid-line', x1: left, x2: W, y1: y(v), y2: y(v) }));
    const label = svg('text', { class: 'axis-label', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' });
    label.textContent = v >= 100 ? int.format(v) : oneDecimal.format(v);
    nodes.push(label);
  }
  for (const s of [180, 120, 60, 0]) {
    const label = svg('text', { class: 'axis-label', x: x(now - s * 1000), y: H - 4, 'text-anchor': s === 0 ? 'end' : 'middle' });
    label.textContent = s === 0 ? 'now' : `-${s / 60}m`;
    nodes.push(label);
  }
  if (pts.length > 1) {
    const line = (key) => pts.map((p) => `${x(p.at).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
    const area = `${x(pts[0].at).toFixed(1)},${y(0)} ${line('received')} ${x(pts[pts.length - 1].at).toFixed(1)},${y(0)}`;
    nodes.push(svg('polygon', { class: 'area', points: area }));
    for (const key of ['received', 'stored', 'delivered'])
      nodes.push(svg('polyline', { class: `series ${key}`, points: line(key), 'data-points': pts.length }));
  }
  chart.replaceChildren(...nodes);
}

function setLive(state) {
  $('live-dot').className = `dot ${state === 'live' ? 'live' : state === 'down' ? 'down' : ''}`;
  setText('live-text', state === 'live' ? 'live' : state === 'down' ? 'reconnecting…' : 'connecting…');
}

function connect() {
  const source = new EventSource('/dashboard/stream');
  source.addEventListener('hello', (e) => {
    const data = JSON.parse(e.data);
    history = data.history;
    setLive('live');
    render(data.figures);
    drawChart();
  });
  source.onmessage = (e) => {
    const data = JSON.parse(e.data);
    history.push(data.point);
    if (history.length > HISTORY_SECONDS + 5) history.shift();
    setLive('live');
    render(data.figures);
    drawChart();
  };
  source.onerror = () => setLive('down');
}

// Traces: each event links to its trace in the operator's trace UI (ROOST_TRACE_URL, `{traceId}`
// replaced), or shows the trace id alone when no UI is configured.
let traceTemplate = '';

/** A trace id as a link into the trace UI, or as text. */
function traceNode(traceId) {
  if (!traceId) {
    const none = document.createElement('span');
    none.className = 'muted';
    none.textContent = 'no trace';
    return none;
  }
  if (!/^https?:\/\//.test(traceTemplate) || !/^[0-9a-f]{32}$/.test(traceId)) {
    const code = document.createElement('code');
    code.textContent = traceId;
    return code;
  }
  const a = document.createElement('a');
  a.href = traceTemplate.split('{traceId}').join(traceId);
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  a.className = 'trace-link';
  a.textContent = traceId;
  return a;
}

async function loadTraces() {
  const res = await fetch('/dashboard/traces', { credentials: 'same-origin' });
  if (!res.ok) return;
  const data = await res.json();
  traceTemplate = data.urlTemplate;
  setText('traces-state', data.exporting ? '(exporting spans)' : '(the relay is not exporting spans; trace ids from events\u2019 traceparent tags)');
  const table = $('recent-traces');
  $('traces-none').hidden = data.recent.length > 0;
  table.hidden = data.recent.length === 0;
  table.tBodies[0].replaceChildren(
    ...data.recent.map((t) => {
      const tr = document.createElement('tr');
      const id = document.createElement('td');
      id.textContent = t.eventId;
      const kind = document.createElement('td');
      kind.textContent = String(t.kind);
      const trace = document.createElement('td');
      trace.append(traceNode(t.traceId));
      tr.append(id, kind, trace);
      return tr;
    }),
  );
}

$('trace-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const id = $('trace-event').value.trim().toLowerCase();
  const answer = $('trace-answer');
  const res = await fetch(`/dashboard/traces/${encodeURIComponent(id)}`, { credentials: 'same-origin' });
  const data = await res.json();
  if (!res.ok) answer.replaceChildren(data.error);
  else answer.replaceChildren(`kind ${data.kind} · `, traceNode(data.traceId));
});

drawChart();
connect();
loadTraces();
setInterval(loadTraces, 5000);
