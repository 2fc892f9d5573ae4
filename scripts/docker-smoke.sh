#!/usr/bin/env bash
# Replays the Dockerfile without Docker: clones the committed tree into a temporary folder, lays out
# the build stage from its COPY lines, runs its RUN steps (apt-get excepted: the host provides the
# compiler), assembles the runtime stage from its COPY lines, starts ENTRYPOINT + CMD with the
# stage's ENV (a free port on 127.0.0.1, a temporary volume), runs the HEALTHCHECK command, probes
# /health, /ready and NIP-11, stops the relay with SIGTERM and expects a clean exit.
#
# Usage: scripts/docker-smoke.sh [REPO]   (default: the repository this script is in)
# Environment: SMOKE_KEEP=1 keeps the temporary folder; npm uses its cache first (prefer-offline).
set -euo pipefail

repo="${1:-$(git -C "$(dirname "$0")" rev-parse --show-toplevel)}"
tmp="$(mktemp -d -t roost-docker-smoke-XXXXXX)"
chmod 0755 "$tmp"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  if [ "${SMOKE_KEEP:-}" != 1 ]; then rm -rf "$tmp"; else echo "smoke: kept $tmp"; fi
}
trap cleanup EXIT
step() { echo "smoke: $*"; }
t0=$(date +%s)

step "cloning $repo (committed HEAD)"
git clone --quiet "$repo" "$tmp/context"

# The Dockerfile as JSON: stages with their COPY, RUN, ENV, ENTRYPOINT, CMD and HEALTHCHECK lines.
node - "$tmp/context/Dockerfile" > "$tmp/plan.json" <<'NODE'
const fs = require('node:fs');
const text = fs.readFileSync(process.argv[2], 'utf8').replace(/\\\n/g, ' ');
const stages = [];
let cur;
for (const raw of text.split('\n')) {
  const line = raw.trim();
  if (!line || line.startsWith('#')) continue;
  const [, op, rest] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
  if (!op) continue;
  const args = rest.trim();
  const json = () => (args.startsWith('[') ? JSON.parse(args) : ['/bin/sh', '-c', args]);
  switch (op.toUpperCase()) {
    case 'FROM': cur = { name: (/\sAS\s+(\S+)/i.exec(args) ?? [])[1] ?? String(stages.length), image: args.split(/\s+/)[0], steps: [], env: {}, workdir: '/' }; stages.push(cur); break;
    case 'WORKDIR': cur.workdir = args; break;
    case 'COPY': {
      const parts = args.split(/\s+/);
      const from = parts.find((p) => p.startsWith('--from='))?.slice(7);
      const paths = parts.filter((p) => !p.startsWith('--'));
      cur.steps.push({ op: 'COPY', from, srcs: paths.slice(0, -1), dest: paths[paths.length - 1] });
      break;
    }
    case 'RUN': cur.steps.push({ op: 'RUN', cmd: args }); break;
    case 'ENV': for (const m of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) cur.env[m[1]] = m[2].replace(/^"|"$/g, ''); break;
    case 'ENTRYPOINT': cur.entrypoint = json(); break;
    case 'CMD': cur.cmd = json(); break;
    case 'HEALTHCHECK': cur.healthcheck = args.replace(/^(--\S+\s+)*CMD\s+/, ''); break;
  }
}
process.stdout.write(JSON.stringify(stages));
NODE
# GET a URL: prints the body; `status` mode prints only the status code.
http() { node -e "fetch(process.argv[1], { headers: process.argv[3] ? { accept: process.argv[3] } : {} }).then(async (r) => { const b = await r.text(); if (process.argv[2] === 'status') console.log(r.status); else if (!r.ok) { console.error(r.status, b); process.exit(1); } else console.log(b.trim()); }, (e) => { console.error(String(e)); process.exit(1); })" "$@"; }
plan() { node -e "const s = JSON.parse(require('fs').readFileSync('$tmp/plan.json', 'utf8')); $1"; }

# Lays out one stage in "$tmp/<stage>" and runs its RUN steps there.
build_stage() {
  local stage="$1" root="$tmp/$1"
  mkdir -p "$root"
  local n i
  n=$(plan "process.stdout.write(String(s.find((x) => x.name === '$stage').steps.length))")
  for ((i = 0; i < n; i++)); do
    local kind
    kind=$(plan "process.stdout.write(s.find((x) => x.name === '$stage').steps[$i].op)")
    if [ "$kind" = COPY ]; then
      # "from src... dest": sources from another stage (its WORKDIR stripped) or from the context.
      plan "const st = s.find((x) => x.name === '$stage').steps[$i];
            const w = (n) => s.find((x) => x.name === n).workdir.replace(/\/$/, '');
            for (const src of st.srcs) console.log([st.from ? '$tmp/' + st.from + src.replace(w(st.from), '') : '$tmp/context/' + src, st.dest].join('\t'));" |
        while IFS=$'\t' read -r src dest; do
          local target="$root/$dest"
          if [ "${dest%/}" != "$dest" ] || [ "$dest" = ./ ]; then mkdir -p "$target"; cp -a "$src" "$target"; else mkdir -p "$(dirname "$target")"; rm -rf "$target"; cp -a "$src" "$target"; fi
        done
    else
      local cmd
      cmd=$(plan "process.stdout.write(s.find((x) => x.name === '$stage').steps[$i].cmd)")
      if [[ "$cmd" == apt-get* ]]; then
        step "[$stage] skip (host provides it): ${cmd:0:70}"
        continue
      fi
      # The image's /data is the volume; without a `node` user here, nobody stands in for it.
      cmd="${cmd//\/data/$tmp/volume}"
      if ! id node >/dev/null 2>&1; then cmd="${cmd//chown node:node/chown nobody:nogroup}"; fi
      step "[$stage] RUN $cmd"
      if ! (cd "$root" && npm_config_prefer_offline=true sh -c "$cmd") >"$tmp/run.log" 2>&1; then
        tail -n 40 "$tmp/run.log" >&2
        echo "smoke: RUN failed: $cmd" >&2
        exit 1
      fi
      { grep -v 'npm warn' "$tmp/run.log" || true; } | tail -n 3 | sed "s/^/  [$stage] /"
      step "[$stage] done at $(($(date +%s) - t0)) s"
    fi
  done
}

# better-sqlite3's install script downloads a prebuilt binary from GitHub, as it would in Docker;
# where GitHub is out of reach it compiles SQLite (over two minutes). Unless SMOKE_COMPILE=1, the
# binary this checkout already built is offered as that download (prebuild-install's local
# prebuilds folder), so the step runs as in Docker, only without the network.
if [ "${SMOKE_COMPILE:-}" != 1 ] && [ -f "$repo/node_modules/better-sqlite3/build/Release/better_sqlite3.node" ]; then
  mkdir -p "$tmp/prebuilds/build/Release"
  cp "$repo/node_modules/better-sqlite3/build/Release/better_sqlite3.node" "$tmp/prebuilds/build/Release/"
  name=$(node -e "const v = require('$repo/node_modules/better-sqlite3/package.json').version; console.log('better-sqlite3-v' + v + '-node-v' + process.versions.modules + '-' + process.platform + '-' + process.arch + '.tar.gz')")
  tar -C "$tmp/prebuilds" -czf "$tmp/prebuilds/$name" build
  export npm_config_better_sqlite3_local_prebuilds="$tmp/prebuilds"
  step "offering this checkout's better-sqlite3 binary as the prebuilt download ($name); SMOKE_COMPILE=1 compiles instead"
fi

build_stage build
build_stage runtime
step "runtime stage holds: $(cd "$tmp/runtime" && ls | tr '\n' ' ')"

# Start as the image would, with its ENV; the volume and port are local stand-ins.
port=$(node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")
mkdir -p "$tmp/volume"
export_env=$(plan "const r = s.find((x) => x.name === 'runtime'); for (const [k, v] of Object.entries(r.env)) console.log(k + '=' + v)")
run_env=()
while IFS= read -r kv; do run_env+=("$kv"); done <<<"$export_env"
run_env+=("HOST=127.0.0.1" "PORT=$port" "ROOST_DB=$tmp/volume/roost.db" "ROOST_LOG_LEVEL=info")
if [ "$(id -u)" = 0 ] && ! id node >/dev/null 2>&1; then run_env+=("RUN_AS_USER=nobody"); fi
mapfile -t command < <(plan "const r = s.find((x) => x.name === 'runtime'); for (const a of [...(r.entrypoint ?? []), ...(r.cmd ?? [])]) console.log(a)")
step "start: ${command[*]} (port $port)"
(cd "$tmp/runtime" && exec env "${run_env[@]}" "${command[@]}") >"$tmp/relay.log" 2>&1 &
pid=$!

for _ in $(seq 1 100); do
  if http "http://127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/relay.log" >&2; echo "smoke: relay exited early" >&2; exit 1; }
  sleep 0.2
done
health=$(http "http://127.0.0.1:$port/health" body)
ready=$(http "http://127.0.0.1:$port/ready" body)
nip11=$(http "http://127.0.0.1:$port/" body application/nostr+json)
dashboard=$(http "http://127.0.0.1:$port/dashboard" status)
step "/health $health  /ready $ready  /dashboard $dashboard"
case "$nip11" in *'"supported_nips"'*) ;; *) echo "smoke: bad NIP-11: $nip11" >&2; exit 1 ;; esac
[ "$dashboard" = 200 ] || { echo "smoke: dashboard answered $dashboard" >&2; exit 1; }
hc=$(plan "process.stdout.write(s.find((x) => x.name === 'runtime').healthcheck ?? '')")
if [ -n "$hc" ]; then
  (cd "$tmp/runtime" && env "${run_env[@]}" sh -c "$hc") || { echo "smoke: HEALTHCHECK failed: $hc" >&2; exit 1; }
  step "HEALTHCHECK passed"
fi
owner=$(stat -c %U "$tmp/volume/roost.db")
step "database owned by $owner"

kill -TERM "$pid"
code=0
wait "$pid" || code=$?
pid=""
grep -q 'stopped cleanly' "$tmp/relay.log" || { cat "$tmp/relay.log" >&2; echo "smoke: no clean stop" >&2; exit 1; }
[ "$code" = 0 ] || { echo "smoke: exit code $code" >&2; exit 1; }
step "stopped cleanly; total $(($(date +%s) - t0)) s"
echo "smoke: OK"
