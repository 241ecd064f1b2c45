#!/usr/bin/env bash
# scripts/vm-assets.sh [DIR]   (default DIR: .cache/vm, relative to the repo root)
#
# Fetches what src/lab/vm.ts needs to boot a tiny VM under QEMU, without
# installing anything system-wide:
#   DIR/vmlinuz         Debian's kernel (from the linux-image-<ver>-amd64 .deb
#                       that linux-image-amd64 points at, unpacked with dpkg-deb)
#   DIR/modules/*.ko    the virtio-net driver and what it needs (Debian builds
#                       CONFIG_VIRTIO_NET=m, CONFIG_VIRTIO_PCI=m, ...), .ko.xz
#                       and .ko.zst decompressed
#   DIR/modules.order   their names, one per line, in load (dependency) order
#   DIR/busybox         a static busybox (/bin/busybox when it is already static,
#                       else bin/busybox from the busybox-static .deb: Debian's
#                       busybox-static conflicts with the busybox package
#                       that scripts/setup.sh installs, so it is not installed)
#   DIR/kernel-version  the kernel's version string
# Idempotent: what is already there is kept. Needs apt-get (and an apt
# index: it runs `apt-get update` once if the kernel package is unknown).
# Download ≈ 71 MB (kernel .deb) + 0.9 MB (busybox-static .deb).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${1:-.cache/vm}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
say() { echo "vm-assets: $*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/usernet-vm-assets.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# apt's _apt user downloads into the current directory: let it write there
chmod 0777 "$tmp"

# (a flag file, not a variable: download runs in a subshell)
apt_update_once() {
  if [ ! -e "$tmp/apt-updated" ]; then
    say "apt-get update"
    apt-get update -qq
    : >"$tmp/apt-updated"
  fi
}

# apt-get download PKG into $tmp/dl, prints the .deb path (retries once after `apt-get update`)
download() {
  mkdir -p "$tmp/dl" && chmod 0777 "$tmp/dl"
  if ! (cd "$tmp/dl" && apt-get download -qq "$1" >/dev/null 2>"$tmp/apt.err"); then
    apt_update_once >&2
    (cd "$tmp/dl" && apt-get download -qq "$1" >/dev/null 2>"$tmp/apt.err") || { cat "$tmp/apt.err" >&2; return 1; }
  fi
  ls "$tmp/dl"/"$1"_*.deb
}

# the `depends=` field of a module's .modinfo section
ko_depends() { tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '; }

# ---------------------------------------------------------------- kernel
if [ -s "$DIR/vmlinuz" ] && [ -s "$DIR/modules.order" ]; then
  say "kernel: $DIR/vmlinuz already there ($(cat "$DIR/kernel-version" 2>/dev/null || echo '?')), kept"
else
  kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1 || true; }
  pkg=$(kernel_pkg)
  if [ -z "$pkg" ]; then apt_update_once; pkg=$(kernel_pkg); fi
  [ -n "$pkg" ] || { echo "vm-assets: cannot find the kernel package behind linux-image-amd64" >&2; exit 1; }
  say "kernel: downloading $pkg (not installed; ~70 MB)"
  if ! deb=$(download "$pkg"); then
    # a stale index can name a kernel the mirror no longer has: refresh and ask again
    apt_update_once
    pkg=$(kernel_pkg)
    say "kernel: retrying with $pkg"
    deb=$(download "$pkg")
  fi
  kver=${pkg#linux-image-}
  mkdir -p "$tmp/k"
  # only the kernel image, its config, and the virtio/failover module trees
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/k" --wildcards \
    "./boot/vmlinuz-$kver" "./boot/config-$kver" \
    "./lib/modules/$kver/kernel/drivers/virtio/*" \
    "./lib/modules/$kver/kernel/drivers/net/*" \
    "./lib/modules/$kver/kernel/net/core/*" 2>"$tmp/tar.err" || { cat "$tmp/tar.err" >&2; exit 1; }
  mdir="$tmp/k/lib/modules/$kver/kernel"
  # decompress .ko.xz / .ko.zst (newer Debian kernels compress modules)
  find "$mdir" -name '*.ko.xz' -exec xz -d {} + 2>/dev/null || true
  find "$mdir" -name '*.ko.zst' -exec zstd -q -d --rm {} + 2>/dev/null || true

  cfg="$tmp/k/boot/config-$kver"
  # the options the VM's NIC needs; =m ones become modules, =y ones are built in
  want=()
  for opt in VIRTIO_PCI VIRTIO_NET; do
    v=$(sed -n "s/^CONFIG_$opt=//p" "$cfg")
    say "kernel: CONFIG_$opt=${v:-unset}"
    case $opt:$v in
      VIRTIO_PCI:m) want+=(virtio_pci) ;;
      VIRTIO_NET:m) want+=(virtio_net) ;;
      *:y) ;;
      *) echo "vm-assets: CONFIG_$opt is neither built in nor a module in $pkg" >&2; exit 1 ;;
    esac
  done

  # dependency closure, in load order (depth-first: dependencies first)
  declare -A seen=()
  order=()
  visit() {
    local m=$1 f d
    [ -n "${seen[$m]:-}" ] && return 0
    seen[$m]=1
    f=$(find "$mdir" -name "$m.ko" -print -quit)
    [ -n "$f" ] || f=$(find "$mdir" -name "${m//_/-}.ko" -print -quit)
    [ -n "$f" ] || { echo "vm-assets: module $m not found in $pkg" >&2; exit 1; }
    for d in $(ko_depends "$f"); do visit "$d"; done
    order+=("$m")
    cp "$f" "$tmp/modules/$m.ko"
  }
  rm -rf "$tmp/modules" && mkdir -p "$tmp/modules"
  for m in "${want[@]}"; do visit "$m"; done

  rm -rf "$DIR/modules" && mkdir -p "$DIR/modules"
  if [ ${#order[@]} -gt 0 ]; then cp "$tmp"/modules/*.ko "$DIR/modules/"; fi
  printf '%s\n' "${order[@]}" >"$DIR/modules.order.tmp"
  echo "$kver" >"$DIR/kernel-version"
  cp "$cfg" "$DIR/config"
  cp "$tmp/k/boot/vmlinuz-$kver" "$DIR/vmlinuz.tmp"
  mv "$DIR/vmlinuz.tmp" "$DIR/vmlinuz"
  mv "$DIR/modules.order.tmp" "$DIR/modules.order" # written last: marks the kernel part complete
  say "kernel: $DIR/vmlinuz ($kver, $(du -k "$DIR/vmlinuz" | cut -f1) KiB); modules in load order: ${order[*]:-none}"
fi

# ---------------------------------------------------------------- busybox
is_static() {
  local out
  [ -x "$1" ] || return 1
  out=$(LC_ALL=C ldd "$1" 2>&1 || true) # ldd exits 1 on a static binary
  grep -qE 'not a dynamic executable|statically linked' <<<"$out"
}
if [ -s "$DIR/busybox" ] && is_static "$DIR/busybox"; then
  say "busybox: $DIR/busybox already there, kept"
elif is_static /bin/busybox; then
  cp /bin/busybox "$DIR/busybox.tmp" && mv "$DIR/busybox.tmp" "$DIR/busybox"
  say "busybox: copied the static /bin/busybox"
else
  say "busybox: /bin/busybox is not static; downloading busybox-static (not installed; ~0.9 MB)"
  deb=$(download busybox-static)
  mkdir -p "$tmp/bb"
  dpkg-deb -x "$deb" "$tmp/bb"
  is_static "$tmp/bb/bin/busybox" || { echo "vm-assets: busybox-static's bin/busybox is not static?" >&2; exit 1; }
  cp "$tmp/bb/bin/busybox" "$DIR/busybox.tmp" && chmod 0755 "$DIR/busybox.tmp" && mv "$DIR/busybox.tmp" "$DIR/busybox"
  say "busybox: $DIR/busybox ($("$DIR/busybox" 2>&1 | head -n1 | cut -d' ' -f1-2))"
fi
say "done: $DIR"
