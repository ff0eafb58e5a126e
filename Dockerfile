# p2p-cache sidecar image.
#   docker build -t p2p-cache .
#   docker run -d --network host -v p2p-cache:/data p2p-cache
#   docker run --rm --network host -v p2p-cache:/data p2p-cache diagnose
# The runtime is Node.js 24, the newest LTS line the tests run the sidecar under
# (scripts/test-node-versions.txt); package.json engines allows 20.19+, 22.12+ and 24.
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: compile TypeScript, then drop dev dependencies -----------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No lifecycle scripts: `prepare` would build before src/ is copied, and the one native
# dependency (classic-level, under level) ships prebuilt binaries for glibc.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime ------------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    CACHE_DIR=/data \
    CACHE_HTTP_ADDR=0.0.0.0:9080
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN chmod 0755 dist/cli/main.js \
 && ln -s /app/dist/cli/main.js /usr/local/bin/p2p-cache \
 && mkdir -p /data \
 && chown node:node /data
# The base image's unprivileged user (uid 1000); it owns the data dir and nothing else.
USER node
# Blobs, the level index and identity.key (the peer ID): keep them across restarts.
VOLUME ["/data"]
# 9000: libp2p (TCP), 9001: the data channel for blobs of 1 MiB and more between peers (TCP,
# CACHE_P2P_DATA_PORT), 9080: registry mirror, API cache, stats, metrics, health.
# On a bridge network publish 9000 and 9001 under the same numbers (-p 9000:9000 -p 9001:9001).
EXPOSE 9000 9001 9080
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 CMD ["p2p-cache", "healthcheck"]
ENTRYPOINT ["p2p-cache"]
CMD ["serve"]
