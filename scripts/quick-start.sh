#!/usr/bin/env bash
# The README's main-job command: set up this checkout on a fresh machine and run fanrecall in
# the foreground on embedded defaults (demo S3 server, a demo ext4 filesystem to watch).
#   sudo bash scripts/quick-start.sh [--watch DIR]
# Without --watch it creates a 2 GiB ext4 image at /var/lib/fanrecall/demo.img and mounts it
# at /mnt/fanrecall-demo (fanrecall watches dedicated data filesystems, never the one it runs from).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "quick-start: run as root (fanotify needs CAP_SYS_ADMIN): sudo bash scripts/quick-start.sh" >&2
  exit 1
fi
watch=""
if [[ "${1:-}" == "--watch" ]]; then watch="${2:?--watch needs a directory}"; fi

bash scripts/setup-system.sh
if [[ -d node_modules ]]; then npx tsc -p tsconfig.build.json; else npm ci; fi

if [[ -z "$watch" ]]; then
  watch=/mnt/fanrecall-demo
  mkdir -p /var/lib/fanrecall "$watch"
  if ! mountpoint -q "$watch"; then
    if [[ ! -f /var/lib/fanrecall/demo.img ]]; then
      truncate -s 2G /var/lib/fanrecall/demo.img
      mkfs.ext4 -q -F /var/lib/fanrecall/demo.img
    fi
    mount -o loop /var/lib/fanrecall/demo.img "$watch"
    chmod 1777 "$watch"
  fi
  echo "quick-start: watching the demo filesystem $watch"
fi
exec node bin/fanrecall.js start --watch "$watch"
