# syntax=docker/dockerfile:1
# Roost relay. Build: docker build -t roost .   Run: docker run -p 7447:7447 -v roost-data:/data roost
# scripts/docker-smoke.sh replays this file's install and start steps without Docker (CI runs it).

# --- build: install with a compiler at hand (better-sqlite3 is native), compile TypeScript, drop dev deps
FROM node:20-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# Only better-sqlite3's install script runs (fetches a prebuilt binary or compiles one).
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY shared ./shared
COPY relay ./relay
COPY client ./client
COPY cli ./cli
COPY migrations ./migrations
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# --- runtime: compiled code, production node_modules, migrations and dashboard files; no compiler
FROM node:20-slim AS runtime
# ROOST_PUBLIC_URL: the address clients name in NIP-42 AUTH and NIP-98 (Host headers never count). This
# default serves `docker run -p 7447:7447` from the same machine; set the public wss:// URL in any deployment.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=7447 \
    ROOST_DB=/data/roost.db \
    ROOST_PUBLIC_URL=ws://localhost:7447,ws://127.0.0.1:7447
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/migrations ./migrations
COPY --from=build /app/relay/dashboard ./relay/dashboard
COPY scripts/docker-entrypoint.sh ./docker-entrypoint.sh
RUN mkdir -p /data && chown node:node /data && chmod 0755 ./docker-entrypoint.sh
# The database lives on a volume. The entrypoint gives the mounted folder to the unprivileged
# `node` user (platform volumes are mounted root-owned) and runs the relay as `node`.
VOLUME ["/data"]
EXPOSE 7447
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 7447) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["./docker-entrypoint.sh"]
CMD ["node", "dist/relay/main.js"]
