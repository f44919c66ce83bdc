#!/usr/bin/env bash
# Installs the Debian packages fanrecall's tests and quick start use (idempotent).
# Swift all-in-one is installed by test/helpers/swift-s3.sh when a test first needs it.
set -euo pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: scripts/setup-system.sh   (as root; installs Debian packages for tests and the quick start)"
  exit 0
fi
PACKAGES=(e2fsprogs util-linux mount sqlite3 unzip zip python3 attr acl strace xfsprogs btrfs-progs procps psmisc systemd openssl)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-system: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "setup-system: ok"
