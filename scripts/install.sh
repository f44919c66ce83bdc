#!/usr/bin/env bash
# Installs this checkout's fanrecall where every user can read it and puts `fanrecall` on PATH:
#   sudo bash scripts/install.sh [--prefix DIR]      (DIR defaults to /usr/local)
# Builds the checkout when needed (npm ci, tsc), then copies the compiled code, the native
# addon and the production dependencies (npm ci --omit=dev, no scripts) to DIR/lib/fanrecall,
# root-owned and world-readable, and links DIR/bin/fanrecall to it. The recall service and
# the embedded store run as an unprivileged user, so they need code they can read wherever
# the checkout is (a clone in root's 0700 home is not). Re-running it replaces the copy.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --help | -h) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $(id -u) -ne 0 ]]; then
  echo "install: run as root (the installed code must be root's): sudo bash scripts/install.sh" >&2
  exit 1
fi
umask 022

# The checkout's build: dependencies and the addon (npm ci runs node-gyp), then dist/.
if [[ ! -d node_modules || ! -f native/build/Release/fanrecall_native.node ]]; then npm ci; fi
npx tsc -p tsconfig.build.json

dest="$prefix/lib/fanrecall"
mkdir -p "$prefix/lib" "$prefix/bin"
stage="$(mktemp -d "$prefix/lib/.fanrecall.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
cp package.json package-lock.json .npmrc "$stage/"
cp -r bin dist "$stage/"
mkdir -p "$stage/native/build/Release"
cp native/build/Release/fanrecall_native.node "$stage/native/build/Release/"
# Runtime dependencies only, from the lockfile (s3rver included: the quick start's demo store).
(cd "$stage" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error)
chown -R 0:0 "$stage"
chmod -R u+rwX,go+rX,go-w "$stage"

# Swap the new copy in, then link the command.
if [[ -e "$dest" ]]; then mv "$dest" "$stage.old"; fi
mv "$stage" "$dest"
rm -rf "$stage.old"
ln -sfn "$dest/bin/fanrecall.js" "$prefix/bin/fanrecall"
echo "install: fanrecall installed in $dest; run it as $prefix/bin/fanrecall"
