#!/usr/bin/env bash
# On the GPU machine (the device tool), from the repository root, with gpu-bundle.tar.gz carried
# (make_bundle.sh): every GpuDevice test, the CLI's byte-for-byte check of --device cuda against
# --device cpu, and bench_gpu; each log into $OUT. One run checks everything; exit non-zero if a
# check failed. On a machine without a GPU the device tests skip and the CLI check fails (it is
# run with --require-gpu), so a run here says plainly that nothing ran on a GPU.
#   bash tests/gpu/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/deltakit-gpu-check}
mkdir -p "$OUT"
tar -xzf gpu-bundle.tar.gz -C /tmp
G=/tmp/gpu-bundle
export LD_LIBRARY_PATH="$G/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
status=0
(nvidia-smi || echo "no nvidia-smi") > "$OUT/nvidia-smi.txt" 2>&1
"$G/deltakit_unit_tests" --gtest_filter='Gpu*:FusedPass*:Philox*:CodecError*' 2>&1 | tee "$OUT/unit.log" | tail -15
[ "${PIPESTATUS[0]}" = 0 ] || status=1
grep -q "SKIPPED" "$OUT/unit.log" && { echo "device tests skipped: no GPU"; status=1; }
python3 "$G/gpu_cli.py" --deltakit "$G/deltakit" --require-gpu 2>&1 | tee "$OUT/cli.log" | tail -25
[ "${PIPESTATUS[0]}" = 0 ] || status=1
timeout 300 "$G/bench_gpu" 8 4096 4096 2>&1 | tee "$OUT/bench.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
echo "device_check: $([ $status = 0 ] && echo passed || echo FAILED)" | tee -a "$OUT/bench.txt"
exit $status
