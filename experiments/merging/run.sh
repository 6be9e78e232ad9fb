#!/usr/bin/env bash
# The merge table of issue 6 on the embedded models: skill fine-tunes merged in pairs and all
# four together by task_arithmetic, ties and dare_ties across densities 0.1-0.9, and della;
# exact-match accuracy of every merge on every skill it merged, beside the fine-tunes and the base.
# analyze.py then writes the density plot and experiments/merging/README.md (table and reading).
#   experiments/merging/run.sh [--quick] [DEMO_DIR] [SAMPLES]
# Full: DEMO_DIR holds `deltakit demo`'s base and ft-* (trained here first if absent; default
# deltakit-demo); the merged models go to DEMO_DIR/merges/, the CSV to results/merging/.
# --quick: tiny models trained here, rev + caps, four methods, 30 prompts; results in
# results/merging/quick/ (the CI smoke test).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dk=${DELTAKIT:-$root/build/apps/deltakit}
command="experiments/merging/run.sh $*"
quick=0
[ "${1:-}" = "--quick" ] && { quick=1; shift; }
command -v gnuplot >/dev/null || { apt-get install -y --no-install-recommends gnuplot-nox >/dev/null 2>&1 || true; }
start=$(date +%s)
if [ $quick = 1 ]; then
  out=${RESULTS_DIR:-$root/results/merging/quick}
  demo=$(mktemp -d)
  trap 'rm -rf "$demo"' EXIT
  samples=${1:-30}
  "$dk" train --size tiny --steps 300 --out "$demo/base" --quiet
  for s in rev caps; do  # long and hot enough for a tiny model to learn both skills (96-100%)
    "$dk" finetune --model "$demo/base" --task $s --size tiny --steps 400 --lr 3e-3 --out "$demo/ft-$s" --quiet
  done
else
  out=${RESULTS_DIR:-$root/results/merging}
  demo=$(realpath -m "${1:-deltakit-demo}")
  samples=${2:-200}
  [ -f "$demo/ft-dup/config.json" ] || "$dk" demo --out "$demo" --recipe raw --quiet >/dev/null
fi
out_csv=$out/merge.csv
mkdir -p "$demo/merges" "$out"

# method, per-model parameters, label
methods=(
  "task_arithmetic|{weight: 1.0}|task_arithmetic w=1"
  "task_arithmetic|{weight: 0.5}|task_arithmetic w=0.5"
  "ties|{weight: 1.0, density: 0.1}|ties d=0.1"
  "ties|{weight: 1.0, density: 0.3}|ties d=0.3"
  "ties|{weight: 1.0, density: 0.5}|ties d=0.5"
  "ties|{weight: 1.0, density: 0.7}|ties d=0.7"
  "ties|{weight: 1.0, density: 0.9}|ties d=0.9"
  "dare_ties|{weight: 1.0, density: 0.1}|dare_ties d=0.1"
  "dare_ties|{weight: 1.0, density: 0.3}|dare_ties d=0.3"
  "dare_ties|{weight: 1.0, density: 0.5}|dare_ties d=0.5"
  "dare_ties|{weight: 1.0, density: 0.7}|dare_ties d=0.7"
  "dare_ties|{weight: 1.0, density: 0.9}|dare_ties d=0.9"
  "della|{weight: 1.0, density: 0.5, epsilon: 0.1}|della d=0.5 e=0.1"
)
groups=("caps dup" "rev sort" "rev caps" "rev sort caps dup")
if [ $quick = 1 ]; then
  methods=("${methods[0]}" "${methods[4]}" "${methods[9]}" "${methods[12]}")  # ta w=1, ties/dare_ties d=0.5, della
  groups=("rev caps")
fi

acc() {  # model, skills... -> "skill=acc ..." from eval --json
  local m=$1; shift
  local args=()
  for s in "$@"; do args+=(--task "$s"); done
  "$dk" eval --model "$m" "${args[@]}" --samples "$samples" --json | tail -1 |
    /usr/bin/python3 -c 'import json,sys; t=json.load(sys.stdin)["tasks"]; print(" ".join("%s=%.3f" % (k, v["accuracy"]) for k, v in t.items()))'
}

echo "group,model,skill,accuracy" > "$out_csv.tmp"
for s in $(printf '%s\n' "${groups[@]}" | tr ' ' '\n' | awk '!seen[$0]++'); do  # the merged skills
  for kv in $(acc "$demo/base" $s); do echo "single,base,${kv%=*},${kv#*=}" >> "$out_csv.tmp"; done
  for kv in $(acc "$demo/ft-$s" $s); do echo "single,ft-$s,${kv%=*},${kv#*=}" >> "$out_csv.tmp"; done
done
for g in "${groups[@]}"; do
  for m in "${methods[@]}"; do
    IFS='|' read -r method params label <<< "$m"
    name="$(echo "$g" | tr ' ' '+')-$(echo "$label" | tr ' =' '_-')"
    cfg="$demo/merges/$name.yml"
    {
      echo "merge_method: $method"
      echo "base_model: $demo/base"
      echo "models:"
      for s in $g; do echo "  - model: $demo/ft-$s"; echo "    parameters: $params"; done
      echo "seed: 1"
    } > "$cfg"
    "$dk" merge "$cfg" --out "$demo/merges/$name" --overwrite --quiet > /dev/null
    for kv in $(acc "$demo/merges/$name" $g); do echo "$(echo "$g" | tr ' ' '+'),$label,${kv%=*},${kv#*=}" >> "$out_csv.tmp"; done
    echo "merged $g with $label" >&2
  done
done
mv "$out_csv.tmp" "$out_csv"
seconds=$(( $(date +%s) - start ))
/usr/bin/python3 "$here/analyze.py" --csv "$out_csv" --models "$demo" --seconds "$seconds" --quick "$quick" \
  --samples "$samples" --command "$command" --readme "$([ $quick = 1 ] && echo "$out/README.md" || echo "$here/README.md")"
