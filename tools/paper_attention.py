"""The attention measures (Tables 2-3) of the committed paper-scale models, whichever of the study's
three exist.

`pytest bench -m analysis --scale paper` needs all three models of a dataset (Vanilla-AE, Local-AE,
Vanilla-AR) and trains the missing ones. This script measures only the paper-scale models that are
already committed (`reports/baseline/paper/`: records and best weights), so their sparsity and rank,
each beside the mask-only reference, are on record before the Local-AE run exists. The three-model
ordering claims need all three; with two, the pairwise part that exists is printed (AR sparser than
AE; AE below AR in rank).

    python tools/paper_attention.py [--records reports/baseline/paper] [--data-dir DIR] [--out reports/paper/analysis]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package


def main(argv=None) -> int:
    from sarbench.analysis import SIGMA, study_case, summary_frame, write_study_tables
    from sarbench.analysis.study import case_kwargs
    from sarbench.cases import SCALES, DataCache
    from sarbench.store import ResultStore

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default="reports/baseline/paper", help="folder of paper-scale records and models/")
    ap.add_argument("--data-dir", default=None, help="folder with the datasets (default: $SARBENCH_DATA)")
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--out", default="reports/paper/analysis")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="paper-attention-") as tmp:  # the analysis cache stays out of the repo
        store = ResultStore(Path(tmp))
        shutil.copytree(Path(args.records) / "models", Path(tmp) / "models")
        source = ResultStore(Path(args.records))
        for rec in source.records():
            store.write(rec)
        data = DataCache(args.data_dir).get(args.dataset, SCALES["paper"])
        items = []
        for label in ("vanilla-AE", "local-AE", "vanilla-AR"):
            case = case_kwargs(label, args.dataset)
            found = [r for r in store.records() if r.table == case["table"] and r.attention == case["attention"]
                     and r.dataset == args.dataset and r.scale == "paper"]
            if not found:
                print(f"{label}: no paper-scale record in {args.records}; left out")
                continue
            items.append((label, found[0], study_case(store, found[0], data, label)))
    frame = summary_frame(items)
    paths = write_study_tables(frame, args.out, sigma=SIGMA)
    print(frame[["model", "dataset", "sparsity", "ref_sparsity", "rank", "ref_rank", "N@10"]].to_string(index=False))
    values = dict(zip(frame.model, zip(frame.sparsity, frame["rank"])))
    if {"vanilla-AE", "vanilla-AR"} <= set(values):
        (s_ae, r_ae), (s_ar, r_ar) = values["vanilla-AE"], values["vanilla-AR"]
        print(f"sparsity: AR {s_ar:.4f} {'<' if s_ar < s_ae else '>='} AE {s_ae:.4f}; "
              f"rank: AE {r_ae:.2f} {'<' if r_ae < r_ar else '>='} AR {r_ar:.2f}")
    print(f"wrote {len(paths)} file(s) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
