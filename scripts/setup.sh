#!/usr/bin/env bash
# One-step set-up on a fresh Debian machine (root, Node 20): the system tools
# the dataplane, tests, demo and benchmarks use, the npm dependencies, and the
# build (native addon with node-gyp, TypeScript with tsc).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in iproute2 iputils-ping iperf3 tcpdump util-linux procps python3 make g++ libssl-dev ethtool traceroute nftables dnsutils busybox udhcpc tshark etcd-server qemu-system-x86; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing Debian packages (${need[*]}); run as root to install them" >&2
  fi
fi

# npm install (not npm ci): it keeps the locked versions, and this npm writes lockfiles
# without other platforms' optional packages, which its own `npm ci` then refuses
npm install --no-audit --no-fund --loglevel=error
npm run --silent build
echo "setup: built (native addon build/Release/usernet.node, TypeScript in dist/)"
# a Debian kernel and a static busybox for the VM tests (unpacked into .cache/vm, never installed)
if [ "$(id -u)" = 0 ] && [ ! -f .cache/vm/vmlinuz ]; then
  bash scripts/vm-assets.sh >/dev/null && echo "setup: VM assets in .cache/vm"
fi
