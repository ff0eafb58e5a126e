#!/usr/bin/env bash
# Installs the system packages the test suite drives for real: the CNCF registry
# (Debian's docker-registry) as upstream, skopeo, podman, buildah and containerd's ctr as clients,
# iproute2 and iptables for network namespaces, gh (the GitHub CLI) as an API
# client, docker-compose (v1, parses compose files without an engine) to validate
# docker-compose.ci.yml, and Debian's docker.io (dockerd 20.10), the engine most runners
# use, which the tests start themselves inside a network namespace. Idempotent; needs root
# (CI runs as root). First it fetches the Node.js LTS releases the tests also run the sidecar
# under (scripts/install-test-node.sh; no root needed).
set -euo pipefail

bash "$(dirname "$0")/install-test-node.sh"

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v ctr >/dev/null 2>&1 || need+=(containerd)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v gh >/dev/null 2>&1 || need+=(gh)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)

if [ ${#need[@]} -eq 0 ]; then
  echo "install-test-deps: all present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${need[*]}; run this script as root (it uses apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Packaged services must not start on install: the tests run their own instances.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
echo "install-test-deps: installed ${need[*]}"
