"""Stage ``zeroshot``: Table 1 rows on one downstream dataset's test split (paper §3.3, §5.3, §5.6).

``python -m stages.zeroshot <dataset>``

Reads the feature cache ``features_dir(dataset)`` (view set ``params.zeroshot.views``) and classifies every
test cloud with Eq. 15 (the mean of the multi-view logits against the class text features; with
``zeroshot.view_weights: searched``, PointCLIP's per-view weights searched on a held-out part of the training
split): CLIP's encoder without pre-training, the CLIP2Point encoder, the §5.6 ablation and the RGB-only
control, mean ± std over pre-training seeds (:mod:`pipeline.zeroshot_table`).

Outputs: ``metrics_file("zeroshot/<dataset>")`` (headline: each row's accuracy), and in
``results_dir("zeroshot")/<dataset>``: ``details.json`` (per row: seeds, per-class accuracy),
``predictions.parquet`` (``clip2point.schema.PREDICTION_SCHEMA``) and ``confusion_<row>.png`` (confusion summed
over the row's seeds).
"""

from __future__ import annotations

import sys

from pipeline.feature_store import FeatureStore
from pipeline.params import load_params
from pipeline.paths import features_dir
from pipeline.results import write_outputs
from pipeline.stage import find_dataset, one_argument_main
from pipeline.zeroshot_table import zero_shot_table


def run(dataset: str) -> None:
    params = load_params()
    find_dataset(params, dataset)  # a clear error for an unknown name
    store = FeatureStore.open(features_dir(dataset))
    z = params.zeroshot
    metrics, preds, confusions = zero_shot_table(store, z.views, params.pretrain.seeds, view_weights=z.view_weights,
                                                 val_fraction=z.val_fraction, search_seed=params.seed)
    figures = {
        row: (cm, f"zero-shot {dataset} · {row} · acc {100 * metrics['rows'][row]['acc']:.1f}%")
        for row, cm in confusions.items()
    }
    write_outputs(f"zeroshot/{dataset}", metrics, preds, figures, store.class_names)
    for row, m in metrics["rows"].items():
        print(f"zeroshot {dataset} {row:>20}: acc {100 * m['acc']:.2f} ± {100 * m['acc_std']:.2f} "
              f"(mean class {100 * m['mean_class_acc']:.2f}, n_seeds {m['n_seeds']})")


def main(argv: list[str] | None = None) -> int:
    return one_argument_main("zeroshot", __doc__, argv, run,
                             help="a downstream dataset name (params.yaml data.benchmarks)")


if __name__ == "__main__":
    sys.exit(main())
