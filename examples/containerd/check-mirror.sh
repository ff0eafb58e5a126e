#!/usr/bin/env bash
# Fails loudly when containerd would pull around the p2p-cache sidecar.
#
# containerd tries the mirror in hosts.toml first and, when it is down or answers with an error,
# falls back to `server` without a word: pulls keep working, straight from the registry. This
# checks what the mirror depends on and exits 1 naming the first thing that is wrong:
#   1. the sidecar is ready (GET /readyz answers 200);
#   2. <CERTS_DIR>/<registry>/hosts.toml names the sidecar;
#   3. the image's manifest, asked for the way containerd asks (?ns=<registry>), comes back 200
#      from the sidecar (with an X-Cache header);
# then prints the sidecar's counters: hits and misses should grow as containerd pulls.
# Run it from cron, a monitoring check, or a CI job's first step.
#
# usage: check-mirror.sh [IMAGE]      IMAGE defaults to docker.io/library/alpine:3.20
# env:   P2P_CACHE_URL  the sidecar, as in hosts.toml (default http://127.0.0.1:9080)
#        CERTS_DIR      containerd's hosts directory (default /etc/containerd/certs.d)
set -euo pipefail

url=${P2P_CACHE_URL:-http://127.0.0.1:9080}
certs=${CERTS_DIR:-/etc/containerd/certs.d}
image=${1:-docker.io/library/alpine:3.20}

fail () { printf 'check-mirror: FAIL: %s\n' "$*" >&2; exit 1; }

# Split IMAGE the way containerd does: a first component with a dot or a colon (or localhost)
# is the registry host, anything else is on Docker Hub, where one-part names are library/<name>.
first=${image%%/*}
if [[ $image == */* && ( $first == *.* || $first == *:* || $first == localhost ) ]]; then
  registry=$first name=${image#*/}
else
  registry=docker.io name=$image
fi
if [[ $name == *@* ]]; then
  ref=${name#*@} name=${name%%@*}
elif [[ ${name##*/} == *:* ]]; then
  ref=${name##*:} name=${name%:*}
else
  ref=latest
fi
if [[ $registry == docker.io && $name != */* ]]; then name=library/$name; fi

# 1. The sidecar is up and ready.
status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url/readyz" || true)
if [[ $status != 200 ]]; then
  fail "the p2p-cache sidecar at $url is not ready (GET /readyz: ${status/#000/no answer}), so containerd pulls straight from $registry. Start it (systemctl start p2p-cache, or examples/host-network.sh) and read its log"
fi

# 2. containerd is told to use it for this registry.
toml=$certs/$registry/hosts.toml
if [[ ! -f $toml ]]; then
  fail "$toml does not exist, so containerd does not use the sidecar for $registry: copy examples/containerd/hosts.toml there (for Kubernetes, also set the CRI plugin's registry config_path to $certs)"
fi
if ! grep -qF "\"$url\"" "$toml"; then
  fail "$toml has no [host.\"$url\"] section, so containerd does not send $registry pulls to the sidecar"
fi

# 3. The sidecar serves the image's manifest to a request like containerd's.
manifest=$url/v2/$name/manifests/$ref?ns=$registry
accept='application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
resp=$(curl -sS -i --max-time 60 -H "Accept: $accept" "$manifest" 2>&1) || fail "GET $manifest: $resp"
resp=${resp//$'\r'/}
head=${resp%%$'\n\n'*}
body=${resp#*$'\n\n'}
code=$(sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' <<<"$head")
cache=$(sed -n 's/^[Xx]-[Cc]ache: *//p' <<<"$head" | head -n 1)
if [[ $code != 200 ]]; then
  fail "GET $manifest answered $code, so containerd falls back to $registry for $image: ${body:0:300}"
fi
if [[ -z $cache ]]; then
  fail "GET $manifest answered without an X-Cache header: whatever listens at $url is not the p2p-cache sidecar"
fi

# 4. What the sidecar has served so far (this check's own request included).
stats=$(curl -fsS --max-time 5 "$url/api/cache/stats") || fail "GET $url/api/cache/stats failed"
count () { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" <<<"$stats"; }
printf 'check-mirror: OK: %s serves %s for containerd (X-Cache: %s); hits=%s misses=%s peer_hits=%s upstream_hits=%s\n' \
  "$url" "$image" "$cache" "$(count hits)" "$(count misses)" "$(count peer_hits)" "$(count upstream_hits)"
