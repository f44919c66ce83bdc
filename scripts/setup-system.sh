#!/usr/bin/env bash
# Installs the Debian packages fanrecall's tests and quick start use (idempotent).
# Swift all-in-one is installed by test/helpers/swift-s3.sh when a test first needs it.
set -euo pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: scripts/setup-system.sh   (as root; installs Debian packages for tests and the quick start)"
  exit 0
fi
PACKAGES=(e2fsprogs util-linux mount sqlite3 unzip zip python3 attr acl strace xfsprogs btrfs-progs procps psmisc systemd openssl prometheus)
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
  # The tests run their own Prometheus (test/e2e/prometheus.test.ts: own config, data dir and
  # port). Debian's package enables and starts a system one on :9090 where a service manager
  # lets it; one just installed here is stopped and disabled again (one installed before is
  # left as it was).
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now prometheus.service
    else
      invoke-rc.d prometheus stop || true
      update-rc.d prometheus disable || true
    fi
  fi
fi
echo "setup-system: ok"
