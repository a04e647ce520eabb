#!/usr/bin/env bash
# Installs what dsinfer needs, only what is missing: Debian 12 packages (apt-get), and the npm
# packages of the real-client tests (tests/clients, pinned by its package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(cmake ninja-build g++ make pkg-config libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev
      libfmt-dev libpcre2-dev libopenblas-dev libcpp-httplib-dev libopenmpi-dev openmpi-bin chromium)
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The OpenAI SDK and playwright-core for tests/server/clients_test.cpp (no browser download:
# the tests drive Debian's chromium).
stamp=tests/clients/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ tests/clients/package-lock.json -nt "$stamp" ]; then
  echo "install-deps: npm ci in tests/clients"
  (cd tests/clients && npm ci --no-audit --no-fund --loglevel=error)
fi
