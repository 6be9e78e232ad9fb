#!/usr/bin/env bash
# One experiment end to end from the embedded default: experiments/run.sh NAME [--quick] [DEMO_DIR]
#   riemann        the Riemann-sum view of delta editing (algorithms.md §4)
#   heterogeneity  impact concentration under the Fisher (algorithms.md §3)
#   merging        the merge table (issue 6)          importance   cherries, distillation, plans
#   divergence     divergent tokens of every recipe   codec_sizes  adapter sizes per codec
# Each writes results/NAME/ and its README; --quick (riemann, heterogeneity, merging) runs on tiny models in
# a minute or two, as the CI smoke tests do.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:?usage: experiments/run.sh NAME [--quick] [DEMO_DIR]}
shift
case "$name" in
  riemann|heterogeneity|merging|importance|divergence) exec bash "$here/$name/run.sh" "$@" ;;
  codec_sizes) exec /usr/bin/python3 "$here/codec_sizes/run.py" --deltakit "${DELTAKIT:-$here/../build/apps/deltakit}" "$@" ;;
  *) echo "experiments/run.sh: unknown experiment \"$name\"" >&2; exit 2 ;;
esac
