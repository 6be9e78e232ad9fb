#!/usr/bin/env bash
# The merge table of issue 6 on the embedded models: skill fine-tunes merged in pairs and all
# four together by task_arithmetic, ties and dare_ties across densities 0.1-0.9, and della;
# exact-match accuracy of every merge on every skill it merged, beside the fine-tunes and the base.
#   experiments/merging/run.sh [DEMO_DIR] [SAMPLES]
# DEMO_DIR holds `deltakit demo`'s base and ft-* (trained here first if absent; default
# deltakit-demo). Writes DEMO_DIR/merges/*.yml, the merged models, and results/merging/merge.csv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dk=${DELTAKIT:-$root/build/apps/deltakit}
demo=$(realpath -m "${1:-deltakit-demo}")
samples=${2:-200}
out_csv=$root/results/merging/merge.csv
mkdir -p "$demo/merges" "$(dirname "$out_csv")"
[ -f "$demo/ft-dup/config.json" ] || "$dk" demo --out "$demo" --recipe raw --quiet >/dev/null

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

acc() {  # model, skills... -> "skill=acc ..." from eval --json
  local m=$1; shift
  local args=()
  for s in "$@"; do args+=(--task "$s"); done
  "$dk" eval --model "$m" "${args[@]}" --samples "$samples" --json | tail -1 |
    /usr/bin/python3 -c 'import json,sys; t=json.load(sys.stdin)["tasks"]; print(" ".join("%s=%.3f" % (k, v["accuracy"]) for k, v in t.items()))'
}

echo "group,model,skill,accuracy" > "$out_csv.tmp"
for s in rev sort caps dup; do
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
# the table: one row per (group, method), one column per skill
/usr/bin/python3 - "$out_csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
skills = ["rev", "sort", "caps", "dup"]
table = {}
for r in rows:
    table.setdefault((r["group"], r["model"]), {})[r["skill"]] = float(r["accuracy"])
print("| merged | method | " + " | ".join(skills) + " |")
print("|---|---|" + "---|" * len(skills))
for (g, m), acc in table.items():
    if g == "single" and m == "base":
        continue
    cells = [f"{100 * acc[s]:.1f}%" if s in acc else "" for s in skills]
    print(f"| {g} | {m} | " + " | ".join(cells) + " |")
base = table[("single", "base")]
print("| - | base | " + " | ".join(f"{100 * base[s]:.1f}%" for s in skills) + " |")
PY
/usr/bin/python3 "$here/plot.py" "$out_csv"
