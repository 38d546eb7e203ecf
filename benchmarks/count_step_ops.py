"""Kernel-launching ops and host syncs per pre-training step, by phase (the helper of ``bench_pretrain --ops``).

Runs the real :func:`clip2point.train.pretrain.pretrain` loop for ``--steps`` steps on an in-memory pool of
random clouds and renders, with every aten op counted by :class:`clip2point.train.profiling.DispatchCounter`
(loaded from this checkout's file even when the ``clip2point`` imported is another revision's, so the same
counter measures the code before and after a change). Phases: ``data`` (from the end of one step to the
batch's arrival), ``render`` (the on-the-fly depth renderer), ``forward_backward`` (losses, backward, finite
checks), ``optimizer`` (the optimizer's ``step``), ``log`` (what the loop does after the optimizer: scalars,
curves, scheduler). Prints one JSON line: per-step means over the steps after the first (warm-up), and the
same for logging and non-logging steps separately.

Usage: ``python benchmarks/count_step_ops.py --model c2p-mini --batch 8 --steps 12 [--variant intra_cross]
[--optimizer lamb] [--log-every 10]``
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import types
from pathlib import Path

import torch


def _counter_class():
    spec = importlib.util.spec_from_file_location(
        "_c2p_profiling", Path(__file__).resolve().parents[1] / "clip2point" / "train" / "profiling.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod.DispatchCounter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="c2p-mini")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--variant", default="intra_cross")
    ap.add_argument("--optimizer", default="lamb")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--depth-size", type=int, default=112)
    args = ap.parse_args()
    torch.set_num_threads(2)

    import clip2point.train.pretrain as P
    import clip2point.train.pretrain_run as R
    from clip2point.configs import PretrainConfig
    from clip2point.models.clip import create_clip, text_features
    from clip2point.render.depth import DepthConfig
    from clip2point.render.view_depth import ViewDepthRenderer
    from clip2point.render.views import VIEW_SETS
    from clip2point.train.objectives import frozen_image_features, get_objective
    from clip2point.train.pretrain_data import TensorPretrainSource
    from clip2point.train.selection import EvalSet

    torch.manual_seed(0)
    model, tok = create_clip(args.model, "")
    names = ["a", "b", "c", "d"]
    text = R.TextSide(classes=text_features(model, tok, names, ["image of a {}."]),
                      captions=text_features(model, tok, names, ["a {}."]), caption_labels=torch.arange(4),
                      logit_scale=10.0)
    m = args.batch * args.steps
    g = torch.Generator().manual_seed(0)
    size = int(getattr(model.visual, "image_size", 224)[0] if isinstance(getattr(model.visual, "image_size", 224),
                                                                         (tuple, list)) else model.visual.image_size)
    data = TensorPretrainSource(points=torch.randn(m, 1024, 3, generator=g) * 0.3,
                                rgb=torch.randint(0, 255, (m, 10, size, size, 3), dtype=torch.uint8, generator=g),
                                labels=torch.arange(m) % 4)
    val = EvalSet(depth=torch.rand(4, 1, 16, 16), labels=torch.arange(4))
    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    kw = dict(variant=args.variant, epochs=1, batch_size=args.batch, optimizer=args.optimizer, eval_every=1000,
              log_every=args.log_every, precision="fp32", bf16=False, eval_batch_size=64)
    cfg = PretrainConfig(**{k: v for k, v in kw.items() if k in fields})
    render = ViewDepthRenderer(VIEW_SETS["pretrain10"], DepthConfig(image_size=args.depth_size, dilation=2))

    counter = _counter_class()()
    per_step: list[dict[str, dict[str, int]]] = []
    mark = {"ops": None, "syncs": None}

    def snapshot() -> tuple[dict, dict]:
        return dict(counter.ops), dict(counter.syncs)

    def rendering(points, view, distance):
        counter.phase = "render"
        out = render(points, view, distance)
        counter.phase = "forward_backward"
        return out

    real_build = R.build_optimizer

    def build(name, groups, lr):
        opt = real_build(name, groups, lr)
        step = opt.step

        def counted_step(self, *a, **k):
            counter.phase = "optimizer"
            out = step(*a, **k)
            counter.phase = "log"
            return out

        opt.step = types.MethodType(counted_step, opt)  # a bound method, as LR schedulers expect
        return opt

    R.build_optimizer = build
    logged: list[bool] = []

    def on_step(step: int, scalars: dict) -> None:
        ops, syncs = snapshot()
        prev_o, prev_s = mark["ops"] or {}, mark["syncs"] or {}
        per_step.append({"ops": {k: v - prev_o.get(k, 0) for k, v in ops.items()},
                         "syncs": {k: v - prev_s.get(k, 0) for k, v in syncs.items()}})
        logged.append(bool(scalars) or not hasattr(P, "logged_step"))
        mark["ops"], mark["syncs"] = ops, syncs
        counter.phase = "data"

    extra = {}
    if get_objective(args.variant).image_features:
        # the frozen-feature cache, as the DAG's image_features stage provides it to every run
        with torch.no_grad():
            flat = data.rgb.reshape(-1, size, size, 3)
            extra["image_features"] = frozen_image_features(model.visual.eval(), flat, size).view(m, 10, -1)
    with counter:
        counter.phase = "data"
        mark["ops"], mark["syncs"] = snapshot()
        P.pretrain(model.visual, data, val, text, cfg, rendering, progress=False, on_step=on_step, **extra)

    def mean(rows: list[dict], key: str) -> dict[str, float]:
        phases = sorted({p for r in rows for p in r[key]})
        out = {p: round(sum(r[key].get(p, 0) for r in rows) / len(rows), 1) for p in phases} if rows else {}
        out["total"] = round(sum(out.values()), 1)
        return out

    steady = list(zip(per_step[1:], logged[1:], strict=True))
    quiet = [r for r, lg in steady if not lg] or [r for r, _ in steady]
    loud = [r for r, lg in steady if lg]
    print(json.dumps({"model": args.model, "variant": args.variant, "optimizer": args.optimizer,
                      "steps_counted": len(steady), "ops_per_step": mean([r for r, _ in steady], "ops"),
                      "syncs_per_nonlogging_step": mean(quiet, "syncs"),
                      "syncs_per_logging_step": mean(loud, "syncs") if loud else None,
                      "sync_sites": dict(counter.sync_sites.most_common(8))}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
