#!/usr/bin/env bash
# Installs everything sip-alg, its lab and its tests need on Debian 12, then builds. Idempotent.
# Run as root from the repository: ./scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "setup.sh: run as root (apt-get, namespaces)" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
PKGS=$(cat scripts/debian-packages.txt)
missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
  apt-get update
  # shellcheck disable=SC2086
  apt-get install -y --no-install-recommends $missing
fi
# a Kamailio (5060), Prometheus (9090), keepalived or conntrackd started by its package would run in the root namespace:
# the lab runs its own, inside its namespaces
for svc in kamailio prometheus keepalived conntrackd; do
  (systemctl disable --now "$svc" 2>/dev/null || service "$svc" stop 2>/dev/null || true) >/dev/null 2>&1
done
npm ci --no-audit --no-fund
npm run build
