#!/usr/bin/env bash
# Installs the system packages the test suite drives for real: the CNCF registry
# (Debian's docker-registry) as upstream, skopeo, podman, buildah and containerd's ctr as clients,
# iproute2 and iptables for network namespaces, gh (the GitHub CLI) as an API
# client, docker-compose (v1, parses compose files without an engine) to validate
# docker-compose.ci.yml, promtool (Debian's prometheus) to check examples/prometheus and the
# PromQL of examples/grafana, Debian's chromium for the status page's browser test (driven by
# playwright-core, which downloads no browser of its own), and Debian's docker.io (dockerd
# 20.10), the engine most runners use, which the tests start themselves inside a network
# namespace. Idempotent; needs root (CI runs as root). Without arguments it first fetches the
# Node.js LTS releases the tests also run the sidecar under (scripts/install-test-node.sh; no
# root needed).
#
# Usage: install-test-deps.sh [PACKAGE...]. With package names (from the list below), only those
# are checked and installed: `npm run demo` passes exactly the ones it lacks, and says so.
set -euo pipefail

all=(docker-registry skopeo podman buildah containerd iproute2 iptables openssl apache2-utils gh docker-compose prometheus chromium docker.io util-linux)

# Whether the Debian package's tool is there (the command the tests run).
present () {
  case "$1" in
    docker-registry) command -v docker-registry ;;
    skopeo) command -v skopeo ;;
    podman) command -v podman ;;
    buildah) command -v buildah ;;
    containerd) command -v ctr ;;
    iproute2) command -v ip ;;
    iptables) command -v iptables ;;
    openssl) command -v openssl ;;
    apache2-utils) command -v htpasswd ;;
    gh) command -v gh ;;
    docker-compose) command -v docker-compose ;;
    prometheus) command -v promtool ;;
    chromium) command -v chromium ;;
    docker.io) [ -x /usr/sbin/dockerd ] ;;
    util-linux) command -v nsenter ;;
  esac
} >/dev/null 2>&1

if [ $# -gt 0 ]; then wanted=("$@"); else wanted=("${all[@]}"); fi

# Without arguments (the test suite's own call), also the Node.js releases it runs the sidecar
# under; after the packages, so that a missing one is said first.
node_releases () {
  if [ $# -eq 0 ]; then "$BASH" "${BASH_SOURCE[0]%/*}/install-test-node.sh"; fi
}
need=()
for pkg in "${wanted[@]}"; do
  if [[ " ${all[*]} " != *" $pkg "* ]]; then
    echo "install-test-deps: $pkg is not one of the test packages (${all[*]})" >&2
    exit 2
  fi
  present "$pkg" || need+=("$pkg")
done

if [ ${#need[@]} -eq 0 ]; then
  echo "install-test-deps: all present"
  node_releases "$@"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${need[*]}; run this script as root (it uses apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Packaged services must not start on install: the tests run their own instances. A
# policy-rc.d the machine already has (container images ship one) is the machine's: kept as is.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
echo "install-test-deps: installed ${need[*]}"
node_releases "$@"
