#!/usr/bin/env bash
# The Riemann-sum view of delta editing (algorithms.md §4; Tang et al. 2024) on deltakit's own models:
# every edit of experiments/riemann/edits.txt applied to each skill fine-tune, its measured loss
# change ΔL on held-out skill data, the Riemann estimates for C = 1, 2, 5, 10, skill accuracy and
# FDT (`deltakit riemann`); the model edits' checkpoints (BitDelta by the codec, with and without
# distillation) come from prepare_models.sh. Then analyze.py writes the CSVs, the plots (gnuplot)
# and README.md.
#   experiments/riemann/run.sh [--quick] [DEMO_DIR]
# Full: the demo's small models (DEMO_DIR, default deltakit-demo, built if absent), the four
# skills (or SKILLS="rev sort"), every edit; results in results/riemann/. --quick: tiny models trained here in a minute, rev
# only, a subset of the edits; results in results/riemann/quick/ (the CI smoke test).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dk=${DELTAKIT:-$root/build/apps/deltakit}
command="experiments/riemann/run.sh $*"
quick=0
[ "${1:-}" = "--quick" ] && { quick=1; shift; }
if [ "${1:-}" = "--collect" ]; then  # the parts a Slurm array wrote (slurm/riemann.sbatch), in EDITS' order
  out=${2:?usage: run.sh --collect OUT [EDITS]}
  edits_file=${3:-$here/edits.txt}
  : > "$out/raw.jsonl"
  for skill in ${SKILLS:-rev sort caps dup}; do
    [ -n "$(ls "$out/parts/$skill-"*.jsonl 2>/dev/null)" ] || continue
    /usr/bin/python3 - "$edits_file" "$out/parts/$skill-"*.jsonl >> "$out/raw.jsonl" <<'PY'
import json, sys
import re
order = [re.sub(r"^model:.*label=([^,]+).*$", r"model:label=\1", l.split()[0])  # a model edit's row name
         for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
rows = [json.loads(l) for f in sys.argv[2:] for l in open(f) if l.strip()]
for r in sorted(rows, key=lambda r: order.index(r["edit"]) if r["edit"] in order else len(order)):
    print(json.dumps(r))
PY
  done
  exec /usr/bin/python3 "$here/analyze.py" --results "$out" --readme "$out/README.md" ${MODELS:+--models "$MODELS"}
fi
command -v gnuplot >/dev/null || { apt-get install -y --no-install-recommends gnuplot-nox >/dev/null 2>&1 || true; }
start=$(date +%s)
if [ $quick = 1 ]; then
  out=${RESULTS_DIR:-$root/results/riemann/quick}
  models=$(mktemp -d)
  trap 'rm -rf "$models"' EXIT
  "$dk" train --size tiny --steps 300 --out "$models/base" --quiet
  "$dk" finetune --model "$models/base" --task rev --size tiny --steps 120 --out "$models/ft-rev" --quiet
  skills="rev"
  edits=$(grep -v '^#' "$here/edits.txt" | grep -E 'quick' | cut -d' ' -f1)
  flags=(--samples 16 --samples-task 50 --prompts 8)
  prepare=(--distill-steps 40)
else
  out=${RESULTS_DIR:-$root/results/riemann}
  models=$(realpath -m "${1:-deltakit-demo}")
  [ -d "$models/ft-rev" ] || "$dk" demo --out "$models" --quiet >/dev/null
  skills=${SKILLS:-rev sort caps dup}
  edits=$(grep -v '^#' "$here/edits.txt" | cut -d' ' -f1)
  flags=(--samples 32 --samples-task 200 --prompts 32)
  prepare=()
fi
mkdir -p "$out"
: > "$out/raw.jsonl.tmp"
for skill in $skills; do
  args=()
  for e in $edits; do
    e=${e//\{models\}/$models}
    args+=(--edit "${e//\{skill\}/$skill}")
  done
  if grep -q '^model:' <<< "$edits"; then
    DELTAKIT=$dk "$here/prepare_models.sh" "$models" "$skill" "${prepare[@]}"
  fi
  "$dk" riemann --base "$models/base" --finetuned "$models/ft-$skill" "${args[@]}" --C 1,2,5,10 \
    --calibration "skill:$skill" --task "$skill" --prompts-from "skill:$skill" --new-tokens 8 "${flags[@]}" --json |
    grep '^{' | sed "s/^{/{\"skill\":\"$skill\",/" >> "$out/raw.jsonl.tmp"
done
mv "$out/raw.jsonl.tmp" "$out/raw.jsonl"
seconds=$(( $(date +%s) - start ))
/usr/bin/python3 "$here/analyze.py" --results "$out" --seconds "$seconds" --quick "$quick" --models "$models" \
  --command "$command" \
  --readme "$([ $quick = 1 ] && echo "$out/README.md" || echo "$here/README.md")"
