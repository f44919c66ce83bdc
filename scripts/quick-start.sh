#!/usr/bin/env bash
# The README's main-job command: set up this checkout on a fresh machine, install fanrecall
# on PATH, and run it in the foreground on embedded defaults (demo S3 server, demo ext4 fs).
#   sudo bash scripts/quick-start.sh [--watch DIR]
# fanrecall goes to /usr/local/lib/fanrecall with /usr/local/bin/fanrecall (scripts/install.sh),
# readable by the unprivileged recall service wherever this checkout is. Without --watch it
# creates a 2 GiB ext4 image at /var/lib/fanrecall/demo.img, mounted at /mnt/fanrecall-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "quick-start: run as root (fanotify needs CAP_SYS_ADMIN): sudo bash scripts/quick-start.sh" >&2
  exit 1
fi
watch=""
if [[ "${1:-}" == "--watch" ]]; then watch="${2:?--watch needs a directory}"; fi

bash scripts/setup-system.sh
bash scripts/install.sh

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
exec /usr/local/bin/fanrecall start --watch "$watch"
