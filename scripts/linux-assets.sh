#!/usr/bin/env bash
# Provisions the real-Linux guest's assets (docs/linux.md "Provisioning") into .cache/linux/:
# a Debian bookworm i386 kernel, busybox-static for i386 and SeaBIOS, each pinned by version and
# by the SHA-256 that Debian's apt index lists for it. The i386 packages come through a PRIVATE
# apt state under .cache/linux/apt (its own lists, cache and an empty dpkg status), so the
# machine's dpkg configuration is never touched (no dpkg --add-architecture). Idempotent: with a
# warm cache it only checks a stamp and exits.
#
# Usage: bash scripts/linux-assets.sh [--force]
# $VPF_LINUX_CACHE moves the cache (default .cache/linux), e.g. to keep it across fresh clones.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pins. Versions move with Debian point releases; when the archive drops one, update the three
# fields together from `apt-cache show` against the private state (see docs/linux.md).
KVER="6.1.0-50-686"
PKGS=(
  "linux-image-${KVER}|6.1.176-1|i386|526c469c5148a2b61c4241c3f6575427096575e0ffef9541b6729351c600b3e4"
  "busybox-static|1:1.35.0-4+deb12u1+b1|i386|725ef9e6fbac4ab79b353165b05005e8c140d6e42177ebbc202ff1e13ded8b7c"
  "seabios|1.16.2-1|all|08e5b3f761379f17a6051731cafa03e97686049e2cc1b8bdccc5a910646e2d8e"
)
# Kernel modules the initramfs carries (src/linux/initramfs.ts lists their load order).
MODULES=(
  drivers/virtio/virtio.ko
  drivers/virtio/virtio_ring.ko
  drivers/virtio/virtio_pci_modern_dev.ko
  drivers/virtio/virtio_pci_legacy_dev.ko
  drivers/virtio/virtio_pci.ko
  net/core/failover.ko
  drivers/net/net_failover.ko
  drivers/net/virtio_net.ko
  drivers/pci/pci-pf-stub.ko
)

CACHE="${VPF_LINUX_CACHE:-.cache/linux}"
ASSETS="$CACHE/assets"
STAMP="$CACHE/assets.stamp"
want_stamp="$(printf '%s\n' "$KVER" "${PKGS[@]}" "${MODULES[@]}" | sha256sum | cut -d' ' -f1)"

if [ "${1:-}" != "--force" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ] \
  && [ -f "$ASSETS/manifest.json" ]; then
  exit 0
fi

for tool in apt-get dpkg-deb sha256sum tar; do
  command -v "$tool" >/dev/null || { echo "linux-assets: $tool is required" >&2; exit 1; }
done

mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
APT_DIR="$CACHE/apt"
DEBS="$CACHE/debs"
mkdir -p "$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial" "$DEBS"
touch "$APT_DIR/state/status"
# The machine's sources, our own state: APT::Architecture=i386 makes this apt see the i386
# archive without registering a foreign architecture in the machine's dpkg.
APT_OPTS=(
  -o APT::Architecture=i386
  -o "APT::Architectures::=i386"
  -o "Dir::State=$APT_DIR/state"
  -o "Dir::State::status=$APT_DIR/state/status"
  -o "Dir::Cache=$APT_DIR/cache"
  -o Debug::NoLocking=1
  -o APT::Sandbox::User=root
  -q
)

deb_name() { # package version arch -> the file name apt-get download writes
  local ver="${2//:/%3a}"
  echo "${1}_${ver}_${3}.deb"
}

verify() { # file sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

updated=0
for entry in "${PKGS[@]}"; do
  IFS='|' read -r pkg ver arch sha <<<"$entry"
  file="$DEBS/$(deb_name "$pkg" "$ver" "$arch")"
  if verify "$file" "$sha"; then continue; fi
  rm -f "$file"
  if [ "$updated" = 0 ]; then
    # An index that fails to download (e.g. "Mirror sync in progress" on bookworm-security) is
    # ignored by apt; the pins below are all in the main archive.
    apt-get "${APT_OPTS[@]}" update >/dev/null 2>&1 || true
    updated=1
  fi
  listed="$(apt-cache "${APT_OPTS[@]}" show "$pkg=$ver" 2>/dev/null | sed -n 's/^SHA256: //p' | head -n1 || true)"
  if [ -z "$listed" ]; then
    echo "linux-assets: $pkg $ver is not in the archive any more; available:" >&2
    apt-cache "${APT_OPTS[@]}" madison "$pkg" >&2 || true
    echo "linux-assets: update the pin in scripts/linux-assets.sh (version and SHA256)" >&2
    exit 1
  fi
  if [ "$listed" != "$sha" ]; then
    echo "linux-assets: apt index lists SHA256 $listed for $pkg $ver, pinned $sha" >&2
    exit 1
  fi
  (cd "$DEBS" && apt-get "${APT_OPTS[@]}" download "$pkg=$ver" >/dev/null)
  if ! verify "$file" "$sha"; then
    echo "linux-assets: $file does not match its pinned SHA256 $sha" >&2
    exit 1
  fi
done

# Unpack only what the guest needs into a fresh folder, then swap it in.
tmp="$CACHE/assets.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/modules"
IFS='|' read -r kpkg kver karch _ <<<"${PKGS[0]}"
kdeb="$DEBS/$(deb_name "$kpkg" "$kver" "$karch")"
mod_paths=()
for m in "${MODULES[@]}"; do mod_paths+=("./lib/modules/$KVER/kernel/$m"); done
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$tmp" "./boot/vmlinuz-$KVER" "./boot/config-$KVER" "${mod_paths[@]}"
mv "$tmp/boot/vmlinuz-$KVER" "$tmp/vmlinuz"
mv "$tmp/boot/config-$KVER" "$tmp/kernel.config"
for m in "${MODULES[@]}"; do mv "$tmp/lib/modules/$KVER/kernel/$m" "$tmp/modules/$(basename "$m")"; done
rm -rf "$tmp/boot" "$tmp/lib"

IFS='|' read -r bpkg bver barch _ <<<"${PKGS[1]}"
dpkg-deb --fsys-tarfile "$DEBS/$(deb_name "$bpkg" "$bver" "$barch")" | tar -x -C "$tmp" ./bin/busybox
mv "$tmp/bin/busybox" "$tmp/busybox" && rmdir "$tmp/bin"

IFS='|' read -r spkg sver sarch _ <<<"${PKGS[2]}"
dpkg-deb --fsys-tarfile "$DEBS/$(deb_name "$spkg" "$sver" "$sarch")" \
  | tar -x -C "$tmp" ./usr/share/seabios/bios.bin ./usr/share/seabios/vgabios-stdvga.bin
mv "$tmp/usr/share/seabios/bios.bin" "$tmp/bios.bin"
mv "$tmp/usr/share/seabios/vgabios-stdvga.bin" "$tmp/vgabios.bin"
rm -rf "$tmp/usr"

# The manifest the harness reads: every file with its SHA-256 (snapshot cache keys use them).
{
  echo "{"
  echo "  \"kernelRelease\": \"$KVER\","
  echo "  \"packages\": {"
  n=0
  for entry in "${PKGS[@]}"; do
    IFS='|' read -r pkg ver arch sha <<<"$entry"
    n=$((n + 1)); sep=","; [ "$n" = "${#PKGS[@]}" ] && sep=""
    echo "    \"$pkg\": { \"version\": \"$ver\", \"arch\": \"$arch\", \"sha256\": \"$sha\" }$sep"
  done
  echo "  },"
  echo "  \"files\": {"
  files=(vmlinuz kernel.config busybox bios.bin vgabios.bin)
  for m in "${MODULES[@]}"; do files+=("modules/$(basename "$m")"); done
  n=0
  for f in "${files[@]}"; do
    n=$((n + 1)); sep=","; [ "$n" = "${#files[@]}" ] && sep=""
    echo "    \"$f\": \"$(sha256sum "$tmp/$f" | cut -d' ' -f1)\"$sep"
  done
  echo "  }"
  echo "}"
} >"$tmp/manifest.json"

rm -rf "$ASSETS"
mv "$tmp" "$ASSETS"
echo "$want_stamp" >"$STAMP"
echo "linux-assets: ready in $ASSETS"
