#!/usr/bin/env bash
# The bench on a GPU machine lent through the device tool, in one command (carry: [".gpu-kit"],
# made by prepare.sh; no node_modules, no Node and no network needed there):
#   bash scripts/gpu-machine/run.sh
# Unpacks Node, Dawn and, when the machine has none, the Vulkan loader from .gpu-kit, points the
# loader at the NVIDIA driver, then runs the bench in steps, each under its own time limit and all of
# them within KIT_BUDGET_S seconds (default 480), so the call ends well inside the tool's 600 s.
# $OUT gets run.log (everything printed, the adapter's name first) and one JSON per finished step.
#
#   KIT_PLAN=full   (default) probe; mk (6 methods) on gpu and cpu, then on gpu with --no-overlap
#                   (what the engine's overlap of tensors gains); 7b (gpu: linear, ties; cpu:
#                   linear); 1b (4 methods) on gpu and cpu; on gpu, the subspace statistics' large
#                   case and matrix products up to 4096²
#   KIT_PLAN=small  the small set and the small subspace/linalg sections on both backends: a check of
#                   the kit itself, e.g. here on SwiftShader with
#                   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json KIT_BUDGET_S=900
#   KIT_CARRIED_LOADER=1  use the carried Vulkan loader even where the system has one
set -u
START=$(date +%s)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KIT=$REPO/.gpu-kit
: "${OUT:?set OUT to the folder for the log and the results}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
PLAN=${KIT_PLAN:-full}
BUDGET=${KIT_BUDGET_S:-480}
say() { echo "[run.sh +$(($(date +%s) - START))s] $*"; }
trap 'say "done; files in \$OUT: $(cd "$OUT" && ls | tr "\n" " ")"' EXIT

[ -f "$KIT/bench.mjs" ] || { say "no $KIT/bench.mjs: run scripts/gpu-machine/prepare.sh and carry .gpu-kit"; exit 1; }
# The kit unpacks next to itself; on a read-only tree, into a copy under /tmp (the bench finds the
# demo checkpoints at <kit>/../public/demo).
if ! touch "$KIT/.writable" 2>/dev/null; then
  root=/tmp/gpu-kit-root
  mkdir -p "$root" && cp -r "$KIT" "$root/" && ln -sfn "$REPO/public" "$root/public"
  KIT=$root/.gpu-kit
fi

unxz_to() { # file.xz target
  [ -s "$2" ] && return 0
  if command -v xz >/dev/null; then
    xz -dc "$1" >"$2.partial"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2.partial"
  fi && mv "$2.partial" "$2"
}
unxz_to "$KIT/dist/linux-x64/dawn.node.xz" "$KIT/dist/linux-x64/dawn.node" || { say "cannot unpack dawn.node"; exit 1; }
NODE=$KIT/node
if unxz_to "$KIT/node.xz" "$NODE" && chmod +x "$NODE" && "$NODE" --version >/dev/null 2>&1; then :; else
  NODE=$(command -v node || true)
  [ -n "$NODE" ] || { say "the carried Node does not run here and there is no other"; exit 1; }
  say "the carried Node does not run here; using $NODE"
fi

# The Vulkan loader: the system's, else the carried Debian package, unpacked beside the kit (not
# into /) and found through LD_LIBRARY_PATH. The NVIDIA driver's own libraries may sit outside the
# linker's path in a container; the ICD manifest is named explicitly when the loader would miss it.
if [ -n "${KIT_CARRIED_LOADER:-}" ] || ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
  deb=$(ls "$KIT"/debs/libvulkan1_*.deb 2>/dev/null | head -n1)
  if [ -n "$deb" ]; then
    mkdir -p "$KIT/vulkan"
    dpkg-deb -x "$deb" "$KIT/vulkan" 2>/dev/null || dpkg -x "$deb" "$KIT/vulkan" || (cd "$KIT/vulkan" && ar x "$deb" && tar -xf data.tar.*)
    export LD_LIBRARY_PATH="$KIT/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "Vulkan loader: carried $(basename "$deb")"
  else
    say "no Vulkan loader on this machine and none carried"
  fi
else
  say "Vulkan loader: the system's ($(ldconfig -p | grep -m1 'libvulkan\.so\.1 ' | sed 's/.*=> //'))"
fi
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
done
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then export VK_DRIVER_FILES=$f; break; fi
  done
fi
XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
export XDG_RUNTIME_DIR

say "machine: $(uname -srm); $(grep -m1 PRETTY_NAME /etc/os-release 2>/dev/null | cut -d= -f2); $(nproc) cores; $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
say "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
if command -v nvidia-smi >/dev/null; then
  say "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -n1)"
fi
say "node $("$NODE" --version) ($NODE); plan $PLAN; budget ${BUDGET}s"
say "VK_DRIVER_FILES=${VK_DRIVER_FILES:-} VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-} LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

# One bench run under min(limit, what is left of the budget); its output also goes to $STEP_OUT.
STEP_OUT=$(mktemp)
step() { # name limit_s bench-args...
  local name=$1 limit=$2 left rc t0
  shift 2
  left=$((BUDGET - ($(date +%s) - START) - 5))
  if [ "$left" -lt 15 ]; then
    say "== $name: skipped (budget spent)"
    return 99
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "== $name (at most ${limit}s): bench $*"
  t0=$(date +%s)
  timeout -k 5 "$limit" "$NODE" "$KIT/bench.mjs" "$@" 2>&1 | tee "$STEP_OUT"
  rc=${PIPESTATUS[0]}
  say "== $name: exit $rc after $(($(date +%s) - t0))s$([ "$rc" = 124 ] && echo ' (stopped at its limit)')"
  return "$rc"
}

# Probe: which adapter Dawn picks (its name is printed as "gpu: WebGPU: ..."), on a tiny merge.
B=gpu,cpu
probe=(--sizes small --methods linear --backends gpu --no-analysis --json /tmp/gpu-kit-probe.json)
if ! step probe 40 "${probe[@]}"; then
  say "no GPU adapter: once more with the Vulkan loader's diagnostics"
  if ! VK_LOADER_DEBUG=error,warn,driver step probe-debug 30 "${probe[@]}"; then
    say "continuing on the CPU backend only"
    B=cpu
  fi
fi
adapter=$(grep -m1 '^gpu: ' "$STEP_OUT" | cut -c6-)
say "adapter: ${adapter:-none}"

case $PLAN in
  full)
    step mk 90 --sizes mk --backends $B --no-analysis --json "$OUT/bench-mk.json"
    if [ $B = gpu,cpu ]; then
      step mk-no-overlap 30 --sizes mk --methods linear,ties --backends gpu --no-overlap --no-analysis --json "$OUT/bench-mk-no-overlap.json"
      step 7b-gpu 110 --sizes 7b --methods linear,ties --backends gpu --no-analysis --json "$OUT/bench-7b-gpu.json"
    fi
    step 7b-cpu 60 --sizes 7b --methods linear --backends cpu --no-analysis --json "$OUT/bench-7b-cpu.json"
    step 1b 60 --sizes 1b --methods linear,task_arithmetic,ties,dare_ties --backends $B --no-analysis --json "$OUT/bench-1b.json"
    if [ $B = gpu,cpu ]; then
      # Not --subspace-methods or --linalg-large: their 4096-wide host eigendecompositions take
      # tens of minutes whatever the GPU (README, Performance).
      step subspace 50 --subspace-only --subspace-large --backends gpu --json "$OUT/bench-subspace.json"
      step linalg 35 --linalg-only --linalg-sizes 1024,2048,4096 --linalg-factor-sizes 1024 --backends gpu --json "$OUT/bench-linalg.json"
    fi
    ;;
  small)
    step small 300 --sizes small --methods linear --backends $B --no-analysis --json "$OUT/bench-small.json"
    step subspace 200 --subspace-only --backends $B --json "$OUT/bench-subspace.json"
    step linalg 200 --linalg-only --linalg-sizes 256 --linalg-factor-sizes 256 --backends $B --json "$OUT/bench-linalg.json"
    ;;
  *)
    say "KIT_PLAN must be full or small, not $PLAN"
    exit 2
    ;;
esac

say "summary (adapter: ${adapter:-none}):"
grep -h -E '^(mk|1b|7b|small) (gpu|cpu) |^subspace |^\| (gpu|cpu) ' "$OUT/run.log" | grep -v '^\[run.sh' || true
