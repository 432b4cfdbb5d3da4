#!/usr/bin/env bash
# Runs every test: installs what the tests need (idempotently), then the whole cargo test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  scripts/install-deps.sh
fi
cargo test --locked --lib --bins --tests "$@"
