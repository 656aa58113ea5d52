#!/usr/bin/env bash
# Builds .gpu-kit/: everything `npm run bench` needs on a borrowed GPU machine that has no
# node_modules and no Node (one NVIDIA H200, x86-64, no network), small enough to travel with the
# working tree (64 MiB in all):
#   bench.mjs                 bench/bench.ts and all it imports (WGSL inlined), one ESM file (bundle.mjs)
#   dist/linux-x64/dawn.node.xz  Dawn, the `webgpu` package's addon (the bundle requires it from there)
#   node.xz                   this machine's Node binary, stripped (glibc 2.28+, libstdc++)
#   debs/libvulkan1_*.deb     the Vulkan loader from Debian (the machine may lack one)
# then prints the `carry` list and the command for the device tool. Stripping and compressing Node
# takes a few minutes the first time; later runs reuse it while the binary is the same.
#
#   bash scripts/gpu-machine/prepare.sh          (from anywhere; writes <repo>/.gpu-kit)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KIT=$REPO/.gpu-kit
LIMIT=$((64 * 1024 * 1024))
cd "$REPO"

if ! git check-ignore -q .gpu-kit/bench.mjs; then
  echo "prepare: .gpu-kit/ is not ignored by git (add it to .gitignore): it must travel as a carried path" >&2
  exit 1
fi
[ "$(uname -m)" = x86_64 ] || { echo "prepare: the GPU machine is x86-64; this machine is $(uname -m)" >&2; exit 1; }
mkdir -p "$KIT/dist/linux-x64" "$KIT/debs"

# 1. The bench, bundled (about 1 MB).
node scripts/gpu-machine/bundle.mjs "$KIT/bench.mjs"

# 2. Stripped, xz-compressed binaries, redone only when the source changed (stamp: its sha256).
pack() { # source target.xz
  local src=$1 dst=$2 stamp
  stamp=$(sha256sum "$src" | cut -d' ' -f1)
  if [ -f "$dst" ] && [ "$(cat "$dst.sha256" 2>/dev/null)" = "$stamp" ]; then
    echo "prepare: $(basename "$dst") is current"
    return
  fi
  echo "prepare: stripping and compressing $src (xz -9; a minute or two)"
  local tmp
  tmp=$(mktemp)
  cp "$src" "$tmp"
  strip --strip-unneeded "$tmp" 2>/dev/null || echo "prepare: strip failed; packing $src unstripped"
  xz -T0 -9 -c "$tmp" >"$dst.partial"
  rm -f "$tmp"
  mv "$dst.partial" "$dst"
  echo "$stamp" >"$dst.sha256"
}
pack "$REPO/node_modules/webgpu/dist/linux-x64/dawn.node" "$KIT/dist/linux-x64/dawn.node.xz"
pack "$(readlink -f "$(command -v node)")" "$KIT/node.xz"
node --version >"$KIT/node.version"

# 3. The Vulkan loader (the device README's recipe, amd64 lists kept under /tmp).
if ! ls "$KIT"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
  lists=/tmp/amd64
  mkdir -p "$lists/partial"
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists -oAPT::Sandbox::User=root)
  apt-get "${o[@]}" update >/dev/null
  (cd "$KIT/debs" && apt-get "${o[@]}" download libvulkan1)
fi

# 4. What travels: the working tree (tracked and untracked-not-ignored files) plus the kit, without
# what a local run of run.sh unpacked there.
rm -rf "$KIT/node" "$KIT/dist/linux-x64/dawn.node" "$KIT/vulkan"
tree=$(git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
kit=$(find "$KIT" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
total=$((tree + kit))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "prepare: working tree $(mib "$tree") + kit $(mib "$kit") = $(mib "$total") of the 64 MiB that may travel"
if [ "$total" -gt "$LIMIT" ]; then
  echo "prepare: too large to travel; remove untracked files from the working tree or shrink the kit" >&2
  exit 1
fi

cat <<EOF

Ready. On a GPU machine lent through the device tool, one call:
  carry:     [".gpu-kit"]
  command:   bash scripts/gpu-machine/run.sh
  timeout_s: 600
run.sh stops itself within KIT_BUDGET_S (default 480 s) and leaves run.log and the bench's JSON in \$OUT.
EOF
