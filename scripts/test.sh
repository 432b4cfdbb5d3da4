#!/usr/bin/env bash
# Runs every test: installs what the tests need (idempotently), then the whole cargo test suite. The lab tests need
# root: as root they run (they never skip there); as anyone else each skips, saying so in one line.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  if command -v apt-get >/dev/null; then
    scripts/install-deps.sh
  fi
else
  echo "scripts/test.sh: not root, so the lab tests skip (one 'skipped:' line each); run it as root for all of them" >&2
fi
cargo test --locked --lib --bins --tests "$@"
