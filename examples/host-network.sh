#!/usr/bin/env bash
# One p2p-cache sidecar on this runner host, in a container on the host's network.
#
# - --network host: the other runners' sidecars reach TCP 9000 (libp2p) and 9001 (the data
#   channel for large blobs) at this host's own address, with no -p and no CACHE_ANNOUNCE_ADDRS.
#   A host firewall must let both in from the other runners.
# - CACHE_HTTP_ADDR=127.0.0.1:9080: the cache (registry mirror, API cache) is for this host only.
#   The image listens on 0.0.0.0:9080, and with the host network that would be every interface.
# - The p2p-cache volume on /data keeps the store and identity.key across restarts and upgrades,
#   so the peer ID in other hosts' CACHE_BOOTSTRAP_PEERS stays valid.
# - CACHE_BOOTSTRAP_PEERS and CACHE_SWARM_KEY are passed through from this shell when set
#   (`-e NAME` without a value). A fleet keeps them in one file instead: see fleet/.
#
# usage: [CACHE_BOOTSTRAP_PEERS=/ip4/10.0.0.11/tcp/9000/p2p/12D3KooW...] [CACHE_SWARM_KEY=...] ./host-network.sh
set -euo pipefail

docker run -d --name p2p-cache --restart unless-stopped --network host \
  -v p2p-cache:/data -e CACHE_DIR=/data -e CACHE_HTTP_ADDR=127.0.0.1:9080 \
  -e CACHE_BOOTSTRAP_PEERS -e CACHE_SWARM_KEY \
  p2p-cache

# Ready once the store is open and the server listens (curl retries 503 and refused connections).
curl -fsS --retry 30 --retry-delay 1 --retry-connrefused http://127.0.0.1:9080/readyz
echo

# This node's peer ID and addresses: other hosts bootstrap with the line for an address they can reach.
docker run --rm --network host -v p2p-cache:/data -e CACHE_DIR=/data p2p-cache id
