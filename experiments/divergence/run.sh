#!/usr/bin/env bash
# Divergent-token metrics (algorithms.md §5) of every compressed fine-tune of `deltakit demo` against its
# uncompressed fine-tune: FDT/SDT/KL on held-out corpus prompts (N=32) and on the skill's own
# prompts (N=8), beside exact-match accuracy. One row per skill and recipe.
#   experiments/divergence/run.sh [DEMO_DIR] [PROMPTS]
# DEMO_DIR holds the demo's ft-* and applied/* (the demo runs first if absent; default
# deltakit-demo). Writes results/divergence/fdt.csv and prints it as a Markdown table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dk=${DELTAKIT:-$root/build/apps/deltakit}
demo=$(realpath -m "${1:-deltakit-demo}")
prompts=${2:-64}
out_csv=$root/results/divergence/fdt.csv
mkdir -p "$(dirname "$out_csv")"
[ -d "$demo/applied" ] || "$dk" demo --out "$demo" --quiet >/dev/null

. "$here/../common.sh"

echo "skill,recipe,accuracy,corpus_fdt_mean,corpus_sdt,corpus_kl,skill_fdt_mean,skill_sdt,skill_kl" > "$out_csv.tmp"
for skill in rev sort caps dup; do
  for m in "$demo"/applied/"$skill"-*; do
    recipe=${m##*/$skill-}
    c=$("$dk" eval --model "$m" --reference "$demo/ft-$skill" --prompts "$prompts" --new-tokens 32 --task "$skill" --json)
    s=$("$dk" eval --model "$m" --reference "$demo/ft-$skill" --prompts "$prompts" --prompts-from "skill:$skill" \
        --new-tokens 8 --json)
    row=$(echo "$c" | field '"%.3f,%.2f,%.4f,%.3g" % (j["tasks"]["'"$skill"'"]["accuracy"], j["reference"]["fdt_mean"], j["reference"]["sdt_mean"], j["reference"]["kl_mean"])')
    row2=$(echo "$s" | field '"%.2f,%.4f,%.3g" % (j["reference"]["fdt_mean"], j["reference"]["sdt_mean"], j["reference"]["kl_mean"])')
    echo "$skill,$recipe,$row,$row2" >> "$out_csv.tmp"
  done
done
mv "$out_csv.tmp" "$out_csv"
/usr/bin/python3 - "$out_csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| skill | recipe | accuracy | corpus FDT (N=32) | corpus SDT | corpus KL | skill FDT (N=8) | skill SDT | skill KL |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['skill']} | {r['recipe']} | {100 * float(r['accuracy']):.1f}% | {r['corpus_fdt_mean']} | {r['corpus_sdt']} | "
          f"{r['corpus_kl']} | {r['skill_fdt_mean']} | {r['skill_sdt']} | {r['skill_kl']} |")
PY
