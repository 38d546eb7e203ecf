"""Stage ``rgb_zeroshot@<benchmark>``: the run's CLIP on one benchmark's RGB test renders (§3.3 on images).

Zero-shot accuracy per view and over all views (Eq. 15's mean over views), next to which the ``zeroshot``
stage's depth-map accuracy shows the image–depth gap. A stage of its own per benchmark, so adding or
changing a benchmark never invalidates ``clip_bootstrap`` or any pre-training run. Reported, never used
for any choice.

Usage: ``python -m stages.rgb_zeroshot <dataset> [--device cpu|cuda]``
Metrics: ``pipeline.paths.metrics_file("rgb_zeroshot/<dataset>")``.
"""

from __future__ import annotations

import argparse
import sys

import torch

from pipeline import paths
from pipeline.artifacts import write_json
from pipeline.clip_eval import NoRgbError, stream_rgb_zero_shot
from pipeline.models import load_clip
from pipeline.params import load_params
from pipeline.stage import find_dataset, run_main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)

    def body() -> None:
        params = load_params()
        ds = find_dataset(params, args.dataset)
        model, tok = load_clip(args.device)
        try:
            res = stream_rgb_zero_shot(model, tok, ds.name, "test", list(params.clip.templates))
        except NoRgbError as e:  # point-cloud datasets: recorded as skipped, the DAG goes on
            res = {"skipped": str(e)}
        write_json(paths.metrics_file(f"rgb_zeroshot/{ds.name}"), {"zeroshot": {f"{ds.name}/test": res}})
        said = (str(res["skipped"]) if "skipped" in res else
                f"{res['rgb_per_view']:.3f} per view, {res['rgb_multi_view']:.3f} over views (n={res['n']})")
        print(f"rgb_zeroshot: {ds.name}/test: {said}", file=sys.stderr)

    return run_main("rgb_zeroshot", body)


if __name__ == "__main__":
    sys.exit(main())
