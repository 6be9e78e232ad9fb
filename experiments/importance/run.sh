#!/usr/bin/env bash
# Importance, distillation and planning on the embedded fine-tunes (issue 7's claims), one row per
# skill and variant: adapter bytes, exact-match accuracy, divergent tokens on the skill's prompts
# (N=8) and KL against the uncompressed fine-tune.
#   bitdelta + cherry (1% per row) with H = magnitude (1), Fisher (deltakit importance --kind
#   fisher on the skill) or activations (--kind act): the same bytes, other cherries;
#   compress --distill (BitDelta scale distillation on corpus text, paper defaults) alone and with
#   Fisher cherries, with the held-out logit loss before -> after;
#   deltakit plan at a 200 KB budget (between uniform bitdelta and dare:p=0.9 on the small preset)
#   against the best uniform recipe that fits, measured on real adapters (compress --rules, apply).
#   experiments/importance/run.sh [DEMO_DIR]
# DEMO_DIR: the demo's folder (built first if absent; default deltakit-demo). Writes
# results/importance/table.csv and prints it as a Markdown table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dk=${DELTAKIT:-$root/build/apps/deltakit}
demo=$(realpath -m "${1:-deltakit-demo}")
out_csv=$root/results/importance/table.csv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out_csv")"
[ -d "$demo/ft-rev" ] || "$dk" demo --out "$demo" --quiet >/dev/null

. "$here/../common.sh"
measure() {  # skill variant adapter [distill-json]
  local skill=$1 variant=$2 adapter=$3 loss=${4:-}
  "$dk" apply --base "$demo/base" --adapter "$adapter" --out "$work/m" --overwrite --quiet >/dev/null
  local e row
  e=$("$dk" eval --model "$work/m" --reference "$demo/ft-$skill" --prompts 64 --prompts-from "skill:$skill" \
      --new-tokens 8 --task "$skill" --json)
  row=$(echo "$e" | field '"%.3f,%.2f,%.4g" % (j["tasks"]["'"$skill"'"]["accuracy"], j["reference"]["fdt_mean"], j["reference"]["kl_mean"])')
  echo "$skill,$variant,$(stat -c %s "$adapter"),$row,$loss" >> "$out_csv.tmp"
}

echo "skill,variant,adapter_bytes,accuracy,skill_fdt_mean,skill_kl,distill_loss" > "$out_csv.tmp"
for skill in rev sort caps dup; do
  ft=$demo/ft-$skill
  "$dk" importance --model "$ft" --kind fisher --calibration "skill:$skill" --out "$work/fisher.st" --overwrite >/dev/null
  "$dk" importance --model "$ft" --kind act --calibration "skill:$skill" --out "$work/act.st" --overwrite >/dev/null
  only=(--only '*_proj.weight')
  for v in "bitdelta" "bitdelta + cherry:frac=0.01" "bitdelta + cherry:frac=0.01,importance=fisher:$work/fisher.st" \
           "bitdelta + cherry:frac=0.01,importance=act:$work/act.st"; do
    "$dk" compress --base "$demo/base" --finetuned "$ft" --recipe "$v" "${only[@]}" --out "$work/a.h5" --overwrite --quiet >/dev/null
    name=${v//$work\//}
    measure "$skill" "${name//,/;}" "$work/a.h5"
  done
  for v in "bitdelta" "bitdelta + cherry:frac=0.01,importance=fisher:$work/fisher.st"; do
    j=$("$dk" compress --base "$demo/base" --finetuned "$ft" --recipe "$v" "${only[@]}" --out "$work/a.h5" --overwrite \
        --quiet --json --distill --distill-seq-len 64)
    name=${v//$work\//}
    loss=$(echo "$j" | field '"%.4g -> %.4g" % (j["distillation"]["loss_before"], j["distillation"]["loss_after"])')
    measure "$skill" "${name//,/;} --distill" "$work/a.h5" "$loss"
  done
  p=$("$dk" plan --base "$demo/base" --finetuned "$ft" --budget 200KB --prompts-from "skill:$skill" --prompts 32 \
      --new-tokens 8 --out "$work/rules.yaml" --overwrite --json)
  "$dk" compress --base "$demo/base" --finetuned "$ft" --rules "$work/rules.yaml" --out "$work/a.h5" --overwrite --quiet >/dev/null
  chosen=$(echo "$p" | field '" ".join(f.split(".")[-2] + "=" + c.split(",")[0] for f, c in zip(j["families"], j["choice"]))')
  measure "$skill" "plan (200 KB): $chosen" "$work/a.h5"
  best=$(echo "$p" | field 'max((u for u in j["uniform"] if u["bytes"] <= j["budget"]), key=lambda u: (u["fdt_mean"], -u["kl_mean"]))["label"]')
  # every 2-D tensor, as plan's uniform recipes are; norms stay raw
  printf 'default: raw\nrules:\n  - match: ["model.embed_tokens.weight", "lm_head.weight", "*_proj.weight"]\n    recipe: "%s"\n' \
    "$best" > "$work/uniform.yaml"
  "$dk" compress --base "$demo/base" --finetuned "$ft" --rules "$work/uniform.yaml" --out "$work/a.h5" --overwrite --quiet >/dev/null
  measure "$skill" "best uniform in 200 KB: ${best//,/;}" "$work/a.h5"
done
mv "$out_csv.tmp" "$out_csv"
/usr/bin/python3 - "$out_csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| skill | variant | adapter | accuracy | skill FDT (N=8) | KL | distill loss |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['skill']} | {r['variant'].replace(';', ',')} | {int(r['adapter_bytes']) / 1024:.0f} KB | "
          f"{100 * float(r['accuracy']):.1f}% | {r['skill_fdt_mean']} | {r['skill_kl']} | {r['distill_loss']} |")
PY
