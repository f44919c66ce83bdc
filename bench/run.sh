#!/usr/bin/env bash
# bench/run.sh: `npm run bench [-- ARGS]`. Installs what the benchmark needs and is missing
# (s3fs, rclone and fuse3 from Debian with apt-get; Swift is installed by the test helper
# swift-s3.sh when the run starts it), builds dist/ (fanrecall runs from there), then runs
# bench/main.ts with ARGS (--help, --quick, --only N,M, --out FILE, --verbose).
#
# Owns: the apt-get install of those three packages (root; nothing else on the machine is
# changed) and the dist/ build. Everything the run starts is stopped by bench/main.ts.
# Bounded: apt-get and the build have timeouts; main.ts has its own run-wide watchdog.
set -euo pipefail
cd "$(dirname "$0")/.."

for a in "$@"; do
  if [[ $a == --help || $a == -h ]]; then
    exec node --import tsx bench/main.ts --help
  fi
done

if [[ $(id -u) -ne 0 ]]; then
  echo "bench: must run as root (fanotify, loop mounts, drop_caches, FUSE)" >&2
  exit 2
fi

missing=()
for pair in s3fs:s3fs rclone:rclone fuse3:fusermount3; do
  pkg=${pair%%:*} bin=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq || true
  timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [[ ! -d node_modules ]]; then
  echo "bench: node_modules missing; running npm ci (builds the native addon and dist/)" >&2
  timeout 900 npm ci >&2
fi
echo "bench: building dist/" >&2
timeout 300 npx tsc -p tsconfig.build.json

exec node --import tsx bench/main.ts "$@"
