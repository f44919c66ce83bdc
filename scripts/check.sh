#!/usr/bin/env bash
# The one static gate: generated code fresh, buf lint, format, lint, typecheck, clang-format-free C++ build flags.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== generated code is fresh"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -r proto/gen "$tmp/gen-before"
npx buf generate
if ! diff -r "$tmp/gen-before" proto/gen >/dev/null; then
  diff -r "$tmp/gen-before" proto/gen | head -20 || true
  echo "proto/gen is stale: run 'npm run generate' and commit the result" >&2
  exit 1
fi

echo "== buf lint"
npx buf lint

echo "== buf format"
npx buf format --diff --exit-code proto

echo "== prettier"
npx prettier --check --log-level warn .

echo "== eslint"
npx eslint --max-warnings 0 .

echo "== tsc"
npx tsc --noEmit -p tsconfig.json

echo "check: ok"
