#!/usr/bin/env bash
# gh (GitHub CLI) through the p2p-cache sidecar's API cache.
#
# gh speaks only HTTPS. For any host other than github.com it uses GitHub Enterprise Server's URL
# layout (/api/v3/<path>, /api/graphql), and the sidecar serves that layout for its `github` API
# upstream. So the sidecar needs an HTTPS listener with a certificate gh trusts. Set it up once
# per host:
#
#   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
#     -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
#     -keyout /etc/p2p-cache/cache-key.pem -out /etc/p2p-cache/cache-cert.pem
#   # sidecar environment (in a container, mount /etc/p2p-cache and use the paths it sees):
#   CACHE_HTTPS_ADDR=127.0.0.1:9443
#   CACHE_TLS_CERT=/etc/p2p-cache/cache-cert.pem
#   CACHE_TLS_KEY=/etc/p2p-cache/cache-key.pem
#
# usage: GITHUB_TOKEN=... gh.sh [OWNER/REPO]     (default $GITHUB_REPOSITORY, as on a runner)
# env:   P2P_CACHE_HTTPS_ADDR  the sidecar's CACHE_HTTPS_ADDR (default 127.0.0.1:9443)
#        P2P_CACHE_CERT        its certificate, for gh to trust (default /etc/p2p-cache/cache-cert.pem)
set -euo pipefail

repo=${1:-${GITHUB_REPOSITORY:?usage: gh.sh OWNER/REPO (or set GITHUB_REPOSITORY)}}

# The sidecar is gh's GitHub Enterprise host. GH_ENTERPRISE_TOKEN is the token for that host
# (gh sends it as `Authorization: token ...`, and the sidecar revalidates with it). SSL_CERT_FILE
# replaces the system's CA bundle for gh.
export GH_HOST=${P2P_CACHE_HTTPS_ADDR:-127.0.0.1:9443}
export GH_ENTERPRISE_TOKEN=${GH_ENTERPRISE_TOKEN:-${GITHUB_TOKEN:?set GITHUB_TOKEN (or GH_ENTERPRISE_TOKEN)}}
export SSL_CERT_FILE=${P2P_CACHE_CERT:-/etc/p2p-cache/cache-cert.pem}
export GH_NO_UPDATE_NOTIFIER=1 GH_PROMPT_DISABLED=1

# A REST GET goes through the cache. The first call is a MISS. Later calls are REVALIDATED: the
# sidecar gets a 304 from GitHub, which costs no rate limit, and gh gets the full body.
out=$(gh api --include --jq .full_name "repos/$repo")
out=${out//$'\r'/}
header () { grep -i "^$1:" <<<"$out" || echo "$1: (none)"; }
printf '%s  %s  %s\n' "$(tail -n 1 <<<"$out")" "$(header X-Cache)" "$(header X-Ratelimit-Remaining)"

# Other calls work the same way. Pagination stays on the cache: the sidecar rewrites Link URLs.
#   gh api --paginate "repos/$repo/issues?per_page=100" --jq '.[].title'
# GraphQL is a POST, so it passes through to GitHub uncached (this covers most gh pr/issue commands):
#   gh api graphql -f query='{ viewer { login } }'
