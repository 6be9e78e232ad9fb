#!/usr/bin/env bash
# Parameter heterogeneity (CherryQ, algorithms.md §3) on deltakit's own models: how concentrated the
# impact ½·F_ii·e_i² of a perturbation e is, with F the diagonal Fisher of `deltakit importance`:
#   delta      e = δ (dropping the whole delta), F at the fine-tune on the skill's data
#   bitdelta   e = δ − δ̂ (BitDelta's error), same F
#   base q4    e = w − Q4(w), CherryQ's 4-bit group-128 quantizer on the base weights, F at the
#              base on corpus text (as CherryQ measures the model it quantizes)
# per tensor family: the share of total impact carried by the top 0.1%, 1% and 10% of entries,
# and CherryQ's heterogeneity score mean(F of the top 1%) / max(F of the bottom 99%).
#   experiments/heterogeneity/run.sh [--quick] [DEMO_DIR]
# Full: the demo's small models, four skills, 128 calibration sequences; --quick: tiny models
# trained here, rev, 16 sequences. Results in results/heterogeneity[/quick]/ and README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dk=${DELTAKIT:-$root/build/apps/deltakit}
command="experiments/heterogeneity/run.sh $*"
quick=0
[ "${1:-}" = "--quick" ] && { quick=1; shift; }
start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ $quick = 1 ]; then
  out=${RESULTS_DIR:-$root/results/heterogeneity/quick}
  models=$work
  "$dk" train --size tiny --steps 300 --out "$models/base" --quiet
  "$dk" finetune --model "$models/base" --task rev --size tiny --steps 120 --out "$models/ft-rev" --quiet
  skills="rev" samples=16
else
  out=${RESULTS_DIR:-$root/results/heterogeneity}
  models=$(realpath -m "${1:-deltakit-demo}")
  [ -d "$models/ft-rev" ] || "$dk" demo --out "$models" --quiet >/dev/null
  skills=${SKILLS:-rev sort caps dup} samples=128
fi
mkdir -p "$out"
"$dk" importance --model "$models/base" --kind fisher --calibration corpus --samples $samples --out "$work/fisher-base.st" >/dev/null
for skill in $skills; do
  "$dk" importance --model "$models/ft-$skill" --kind fisher --calibration "skill:$skill" --samples $samples \
    --out "$work/fisher-$skill.st" >/dev/null
done
seconds=$(( $(date +%s) - start ))
/usr/bin/python3 "$here/analyze.py" --models "$models" --fisher "$work" --skills $skills --results "$out" \
  --command "$command" \
  --seconds "$seconds" --quick "$quick" --readme "$([ $quick = 1 ] && echo "$out/README.md" || echo "$here/README.md")"
