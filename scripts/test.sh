#!/usr/bin/env bash
# npm test: the whole suite. Static checks, then unit (no root, seconds), deploy (deploy/ run
# through kubectl, systemd-analyze and friends), native (root), integration (root + fanotify on
# a loop ext4) and end-to-end tests (real S3 servers started by the harness).
# Tests that need root fail (never skip) when CI=true or RECALL_REQUIRE_ROOT_TESTS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--help" ]]; then
  echo "usage: npm test   (as root for the native, integration and end-to-end tests)"
  exit 0
fi
if [[ "${CI:-}" == "true" ]]; then export RECALL_REQUIRE_ROOT_TESTS=1; fi

bash scripts/check.sh
npx tsc -p tsconfig.build.json

# The tests run unprivileged processes from this checkout (the recall service, s3rver,
# readers). A checkout other uids cannot reach (under root's 0700 home, or `mktemp -d`) is
# run through a bind mount at a path they can, removed again when the suite ends.
if [[ $(id -u) -eq 0 ]] && ! setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$PWD/package.json"; then
  view="$(mktemp -d /run/fanrecall-src.XXXXXX)"
  chmod 755 "$view"
  mount --bind "$PWD" "$view"
  trap 'cd /; umount "$view" && rmdir "$view"' EXIT
  echo "test: $PWD is not readable by other users; running the suite from $view (a bind mount of it)"
  cd "$view"
fi

shopt -s nullglob
files=(test/unit/*.test.ts test/deploy/*.test.ts test/native/*.test.ts test/integration/*.test.ts test/e2e/*.test.ts)
node --import tsx --test --test-reporter=spec --test-concurrency=1 --test-timeout=900000 "${files[@]}"
