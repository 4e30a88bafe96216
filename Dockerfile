# syntax=docker/dockerfile:1
# Perpetual API image: build with the dev toolchain, run with production dependencies only, as a non-root user,
# on a read-only root filesystem (the only writable path is the DATA_DIR volume, /data).

ARG NODE_VERSION=24

# --- build: compile TypeScript, prepare the built-in embedder's word-vector cache ------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production dependencies only -----------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime ----------------------------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
# MALLOC_MMAP_THRESHOLD_ is scripts/node-runtime.js SERVER_ENV (a test keeps them equal).
ENV NODE_ENV=production \
    API_HOST=0.0.0.0 \
    DATA_DIR=/data \
    LOG_FORMAT=json \
    MALLOC_MMAP_THRESHOLD_=131072
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/node_modules/.cache/perpetual ./node_modules/.cache/perpetual
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root config ./config
COPY --chown=root:root supabase ./supabase
# The app's files belong to root and are read-only to the process; it writes only to /data.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
USER node
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.API_PORT||process.env.PORT||8000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself; the server stops accepting, drains streams for up to
# SHUTDOWN_TIMEOUT_SECONDS, flushes usage and exits.
STOPSIGNAL SIGTERM
# The V8 flags are scripts/node-runtime.js SERVER_NODE_FLAGS (a test keeps them equal).
ENTRYPOINT ["node", "--max-semi-space-size=16", "--heap-growing-percent=100", "--expose-gc", "dist/main.js"]
