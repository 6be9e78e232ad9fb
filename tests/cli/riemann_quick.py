#!/usr/bin/env python3
"""Smoke test of experiments/riemann/run.sh --quick (tiny models trained on the spot, rev, the
edits marked quick): the CSV has one row per quick edit with finite, sane values, and the
measurements show what must hold on any model: a small random DARE edit is competitive, BitDelta
raises the loss, the codec's BitDelta (compress, apply) measures as the edit bitdelta:m=1, scale
distillation lowers its own loss, and the Riemann estimate at C = 10 is closer to the measured change
than at C = 1."""
import csv, math, os, re, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import quick_experiment  # noqa: E402


def main():
    with quick_experiment("riemann") as (repo, out):
        quick = [re.sub(r"^model:.*label=([^,]+).*$", r"model:label=\1", l.split()[0])  # a model edit's row name
                 for l in open(os.path.join(repo, "experiments/riemann/edits.txt"))
                 if not l.startswith("#") and l.strip().endswith("quick")]
        rows = list(csv.DictReader(open(os.path.join(out, "edits.csv"))))
        assert [r["edit"] for r in rows] == quick, ([r["edit"] for r in rows], quick)
        for r in rows:
            vals = [float(r[k]) for k in ("loss_post", "delta_loss", "estimate_C1", "estimate_C2", "estimate_C5",
                                          "estimate_C10")]
            assert all(math.isfinite(v) for v in vals), r
            assert r["class"] in ("competitive", "decreased", "improved"), r
            assert 0 <= float(r["accuracy"]) <= 1 and 0 <= float(r["fdt_mean"]) <= 8, r
        by = {r["edit"]: r for r in rows}
        assert by["dare:p=0.1,k=0"]["class"] == "competitive", by["dare:p=0.1,k=0"]
        bd = by["bitdelta:m=1"]
        assert float(bd["delta_loss"]) > 0, bd
        err = lambda r, c: abs(float(r[f"estimate_C{c}"]) - float(r["delta_loss"]))
        assert err(bd, 10) < err(bd, 1), bd
        # the codec's BitDelta as a whole model (compress, apply) is the edit bitdelta:m=1; distillation moves it
        codec, dist = by["model:label=bitdelta_codec"], by["model:label=bitdelta_distill"]
        assert abs(float(codec["delta_loss"]) - float(bd["delta_loss"])) <= 1e-3 * abs(float(bd["delta_loss"])), (codec, bd)
        assert float(dist["delta_loss"]) != float(codec["delta_loss"]), dist
        drows = list(csv.DictReader(open(os.path.join(out, "distill.csv"))))
        assert len(drows) == 1 and float(drows[0]["distill_loss_after"]) < float(drows[0]["distill_loss_before"]), drows
        assert 0 < float(drows[0]["scale_ratio_min"]) <= float(drows[0]["scale_ratio_median"]) <= \
            float(drows[0]["scale_ratio_max"]), drows
        assert os.path.exists(os.path.join(out, "README.md")) and os.path.exists(os.path.join(out, "convergence.csv"))
        print(f"ok: {len(rows)} quick edits measured; bitdelta dL {float(bd['delta_loss']):.4f}, estimate error "
              f"C=1 {err(bd, 1):.4f} -> C=10 {err(bd, 10):.4f}")


if __name__ == "__main__":
    main()
