#!/usr/bin/env bash
# The benchmarks (and their harness tests in make test) load the server with wrk. Install it if missing.
set -euo pipefail
command -v wrk >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing wrk for the benchmarks..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
else
  echo "The benchmarks need wrk: run 'sudo apt-get install wrk'." >&2
  exit 1
fi
