#!/usr/bin/env bash
# Installs everything sip-alg, its lab and its tests need on Debian 12, then builds. Idempotent.
# Run as root from the repository: ./scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "setup.sh: run as root (apt-get, namespaces): sudo ./scripts/setup.sh, or as root ./scripts/setup.sh" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
NODE_MAJOR_NEEDED=20

# Node.js 20+ and npm: Debian's nodejs/npm when the archive has a new enough one (Debian 13: 20),
# otherwise one clear line on what to install (Debian 12 ships 18)
node_major() { command -v node >/dev/null 2>&1 && node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt "$NODE_MAJOR_NEEDED" ] || ! command -v npm >/dev/null 2>&1; then
  found=$(command -v node >/dev/null 2>&1 && echo "Node.js $(node -v 2>/dev/null)" || echo "no Node.js")
  command -v npm >/dev/null 2>&1 || found="$found, no npm"
  candidate=$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}')
  cmajor=$(echo "${candidate:-0}" | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/')
  if [ "${cmajor:-0}" -ge "$NODE_MAJOR_NEEDED" ] 2>/dev/null; then
    if [ -n "${SIPALG_SETUP_CHECK_ONLY:-}" ]; then echo "setup.sh: $found; Debian's nodejs $candidate and npm would be installed" >&2; exit 1; fi
    echo "setup.sh: $found; installing Debian's nodejs $candidate and npm"
    apt-get update && apt-get install -y --no-install-recommends nodejs npm
  else
    echo "setup.sh: sip-alg needs Node.js $NODE_MAJOR_NEEDED or newer with npm; found $found, and Debian's archive here offers nodejs ${candidate:-none}. Install Node.js $NODE_MAJOR_NEEDED+ (Debian 13's nodejs and npm, or https://nodejs.org / NodeSource deb.nodesource.com for Debian 12), then run this again." >&2
    exit 1
  fi
fi
[ -n "${SIPALG_SETUP_CHECK_ONLY:-}" ] && { echo "setup.sh: Node.js $(node -v) and npm $(npm -v) found"; exit 0; }
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
