#!/usr/bin/env bash
# The checkpoints behind the sweep's model edits (edits.txt: model:path={models}/...): BitDelta made
# by the codec, without and with scale distillation, as whole models (compress, then apply):
#   MODELS/bitdelta-SKILL          compress --recipe bitdelta --only '*_proj.weight'
#   MODELS/bitdelta-distill-SKILL  the same with --distill (BitDelta's defaults on corpus text),
#                                  and bitdelta-distill-SKILL.json, compress's report (the loss
#                                  before and after distillation)
#   experiments/riemann/prepare_models.sh MODELS SKILL [compress distill options...]
# Idempotent: a model already there is kept, so the tasks of a Slurm array can all call it (under
# flock, as slurm/riemann.sbatch does); each folder appears whole (apply writes it atomically).
set -euo pipefail
models=${1:?usage: prepare_models.sh MODELS SKILL [options]}
skill=${2:?usage: prepare_models.sh MODELS SKILL [options]}
shift 2
dk=${DELTAKIT:-$(cd "$(dirname "$0")/../.." && pwd)/build/apps/deltakit}
work=$(mktemp -d "$models/.prepare-$skill.XXXXXX")
trap 'rm -rf "$work"' EXIT
only=(--only '*_proj.weight')
if [ ! -f "$models/bitdelta-$skill/config.json" ]; then
  "$dk" compress --base "$models/base" --finetuned "$models/ft-$skill" --recipe bitdelta "${only[@]}" \
    --out "$work/a.h5" --quiet >/dev/null
  "$dk" apply --base "$models/base" --adapter "$work/a.h5" --out "$models/bitdelta-$skill" --quiet >/dev/null
fi
if [ ! -f "$models/bitdelta-distill-$skill/config.json" ]; then
  "$dk" compress --base "$models/base" --finetuned "$models/ft-$skill" --recipe bitdelta "${only[@]}" \
    --out "$work/d.h5" --quiet --json --distill --distill-seq-len 64 "$@" | grep '^{' > "$work/d.json"
  "$dk" apply --base "$models/base" --adapter "$work/d.h5" --out "$models/bitdelta-distill-$skill" --quiet >/dev/null
  mv "$work/d.json" "$models/bitdelta-distill-$skill.json"
fi
