"""One-command check of the CUDA path (``make gpu-smoke``): ≤ 7 minutes on one GPU, under a minute on a CPU.

Sections (each time-boxed; a section past its box is reported as ``timeout`` and the script goes on):

1. ``versions``: torch, CUDA, cuDNN, NCCL, open_clip, the GPU, TF32 flags, the SDPA backends enabled.
2. ``distributed``: a world-size-1 process group (NCCL on CUDA, gloo on CPU) through the real
   :func:`gather_with_grad`, :func:`all_reduce_sum` and the DDP wrapper: forward and gradient equal the
   plain module's.
3. ``render``: ``render_depth`` on CUDA vs CPU, both footprints × both modes (CPU run: skipped).
4. ``pretrain``: the real :func:`pretrain` on a fabricated in-memory pool for each precision (fp32, tf32,
   bf16): samples/s after warm-up, ms per phase (CUDA events), data share, peak device memory, and MFU
   against the model FLOPs of a step (``torch.utils.flop_counter`` on E_d's forward + backward, × the 2·B
   depth maps a step encodes; E_i comes from the frozen-feature cache) and the device's dense peak for that
   precision. GPU: random
   ViT-B-32-quickgelu weights at 224², batch 256; CPU: ``c2p-tiny``, batch 8.
5. ``syncs``: host syncs per non-logging step (``DispatchCounter``; on CUDA also
   ``torch.cuda.set_sync_debug_mode("warn")``'s warnings).
6. ``determinism``: 5 steps twice; 3 steps + resume + 2; with and without
   ``torch.use_deterministic_algorithms(True)``.
7. ``cpu_vs_gpu``: the fp32 loss of one fixed batch on CPU and on CUDA (CPU run: skipped).

Writes JSON (``--out``, default ``gpu_smoke.json``) and prints a table. Exit 1 on a NaN, an out-of-memory or a
failed tolerance; 0 otherwise (timeouts and skips are reported, not failures).

Usage: ``python benchmarks/gpu_smoke.py [--device cuda|cpu] [--out FILE] [--budget-s 420]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

#: dense peak TFLOP/s by (device name substring, precision); MFU is reported only for devices listed here
PEAK_TFLOPS = {
    ("H200", "bf16"): 989.0, ("H200", "tf32"): 494.0, ("H200", "fp32"): 67.0,
    ("H100", "bf16"): 989.0, ("H100", "tf32"): 494.0, ("H100", "fp32"): 67.0,
    ("A100", "bf16"): 312.0, ("A100", "tf32"): 156.0, ("A100", "fp32"): 19.5,
    ("L40S", "bf16"): 362.0, ("L40S", "tf32"): 183.0, ("L40S", "fp32"): 91.6,
}


class SectionTimeout(Exception):
    pass


@contextlib.contextmanager
def time_box(seconds: float):
    """Raise :class:`SectionTimeout` in the enclosed block after ``seconds`` (SIGALRM, main thread)."""
    def handler(signum, frame):  # noqa: ARG001
        raise SectionTimeout(f"over its {seconds:.0f} s box")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def versions(dev: torch.device) -> dict[str, Any]:
    import open_clip

    out: dict[str, Any] = {"torch": torch.__version__, "open_clip": open_clip.__version__,
                           "cuda": torch.version.cuda, "device": str(dev)}
    if dev.type == "cuda":
        out.update(gpu=torch.cuda.get_device_name(dev), capability=list(torch.cuda.get_device_capability(dev)),
                   cudnn=torch.backends.cudnn.version(), nccl=".".join(map(str, torch.cuda.nccl.version())),
                   memory_gib=round(torch.cuda.get_device_properties(dev).total_memory / 2**30, 1),
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32,
                   sdpa={"flash": torch.backends.cuda.flash_sdp_enabled(),
                         "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                         "math": torch.backends.cuda.math_sdp_enabled()})
    return out


def distributed(dev: torch.device) -> dict[str, Any]:
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    from clip2point.train.distributed import DistInfo, all_reduce_sum, gather_with_grad

    store = tempfile.NamedTemporaryFile(prefix="c2p-smoke-store.", delete=False).name
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"file://{store}", rank=0, world_size=1)
    try:
        info = DistInfo(rank=0, world=1, local_rank=0, device=dev)
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8)).to(dev)
        ref = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8)).to(dev)
        ref.load_state_dict(net.state_dict())
        ddp = DistributedDataParallel(net, device_ids=[dev.index or 0] if dev.type == "cuda" else None)
        x = torch.randn(12, 16, device=dev)
        # gather_with_grad with world 1 through the real autograd function (not the single-process shortcut)
        from clip2point.train.distributed import _GatherWithGrad

        y = _GatherWithGrad.apply(ddp(x))
        y.pow(2).sum().backward()
        ref(x).pow(2).sum().backward()
        fwd = float((y - ref(x)).detach().abs().max())
        grad = max(float((a.grad - b.grad).abs().max()) for a, b in zip(net.parameters(), ref.parameters(),
                                                                          strict=True))
        total = float(all_reduce_sum(torch.ones(3, device=dev), DistInfo(world=2, device=dev)).sum())
        _, off = gather_with_grad(y, info)
        ok = fwd < 1e-6 and grad < 1e-6 and total == 3.0 and off == 0
        return {"backend": backend, "forward_max_diff": fwd, "grad_max_diff": grad, "all_reduce_sum": total,
                "ok": ok}
    finally:
        dist.destroy_process_group()
        os.unlink(store)


def render(dev: torch.device) -> dict[str, Any]:
    if dev.type != "cuda":
        return {"skipped": "no CUDA device"}
    from clip2point.configs import DepthConfig
    from clip2point.render.depth import render_depth
    from clip2point.render.views import VIEW_SETS

    g = torch.Generator().manual_seed(0)
    pts = torch.randn(8, 1024, 3, generator=g) * 0.3
    out = {}
    for fp in ("square", "disc"):
        for mode in ("min", "weighted"):
            cfg = DepthConfig(image_size=224, dilation=2, mode=mode, footprint=fp, radius=0.02)
            a = render_depth(pts, VIEW_SETS["pretrain10"], 1.0, cfg)
            b = render_depth(pts.to(dev), VIEW_SETS["pretrain10"], 1.0, cfg).cpu()
            diff = float((a - b).abs().max())
            out[f"{fp}/{mode}"] = {"max_abs_diff": diff, "ok": diff < 1e-5}
    out["ok"] = all(v["ok"] for v in out.values())
    return out


def _setup(dev: torch.device, tiny: bool):
    from clip2point.models.clip import create_clip, text_features
    from clip2point.train.pretrain_data import TensorPretrainSource
    from clip2point.train.pretrain_run import TextSide
    from clip2point.train.selection import EvalSet

    name, batch, steps = ("c2p-tiny", 8, 6) if tiny else ("ViT-B-32-quickgelu", 256, 16)
    torch.manual_seed(0)
    model, tok = create_clip(name, "random:0" if not tiny else "")
    model = model.to(dev)
    names = [f"class {i}" for i in range(10)]
    text = TextSide(classes=text_features(model, tok, names, ["image of a {}."]),
                    captions=text_features(model, tok, names, ["a {}."]), caption_labels=torch.arange(10),
                    logit_scale=100.0)
    size = 32 if tiny else 224
    m = batch * (steps + 1)
    g = torch.Generator().manual_seed(1)
    pool = TensorPretrainSource(points=torch.randn(m, 1024, 3, generator=g) * 0.3,
                                rgb=torch.randint(0, 255, (m, 10, size, size, 3), dtype=torch.uint8, generator=g),
                                labels=torch.arange(m) % 10)
    val = EvalSet(depth=torch.rand(16, 6, size, size, generator=g), labels=torch.arange(16) % 10)
    return model, text, pool, val, batch, steps, size


def _renderer(size: int):
    from clip2point.configs import DepthConfig
    from clip2point.render.view_depth import ViewDepthRenderer
    from clip2point.render.views import VIEW_SETS

    return ViewDepthRenderer(VIEW_SETS["pretrain10"], DepthConfig(image_size=size, dilation=2))


def _step_flops(visual, size: int, batch: int, dev: torch.device) -> float:
    """Model FLOPs of one intra_cross step with the frozen-feature cache: E_d forward + backward on 2·batch
    depth maps (E_i is read from the cache), counted by ``torch.utils.flop_counter`` on a copy of the encoder
    in training mode (in eval mode under no_grad, ``nn.MultiheadAttention``'s fused fast path hides its
    projections from the counter: ViT-B/32 would read 5.9 instead of 8.8 GFLOP per forward)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    enc = copy.deepcopy(visual).train().requires_grad_(True)
    x = torch.zeros(2, 3, size, size, device=dev)
    with FlopCounterMode(display=False) as fc:
        enc(x).float().sum().backward()
    return fc.get_total_flops() / 2 * 2 * batch


def pretrain_throughput(dev: torch.device, tiny: bool) -> dict[str, Any]:
    from clip2point.configs import PretrainConfig
    from clip2point.train.objectives import frozen_image_features
    from clip2point.train.pretrain import pretrain

    model, text, pool, val, batch, steps, size = _setup(dev, tiny)
    with torch.no_grad():
        frozen = model.visual.eval()
        cache = torch.cat([frozen_image_features(frozen, pool.rgb[i:i + 16].reshape(-1, size, size, 3).to(dev),
                                                 size).view(-1, 10, frozen.output_dim if hasattr(frozen, "output_dim")
                                                            else -1).cpu() for i in range(0, len(pool.labels), 16)])
    flops = _step_flops(model.visual, size, batch, dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    out: dict[str, Any] = {"model": "c2p-tiny" if tiny else "ViT-B-32-quickgelu", "batch": batch, "image": size,
                           "tflop_per_step": round(flops / 1e12, 3)}
    for precision in ("fp32", "tf32", "bf16"):
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        cfg = PretrainConfig(epochs=1, batch_size=batch, lr=6e-3, warmup_steps=1, precision=precision,
                             max_steps=steps, eval_every=100, log_every=steps, eval_batch_size=256)
        marks: list[float] = []

        def on_step(step, scalars, marks=marks):
            if dev.type == "cuda" and step in (2, steps):
                torch.cuda.synchronize(dev)
            if step in (2, steps):
                marks.append(time.perf_counter())

        res = pretrain(model.visual, pool, val, text, cfg, _renderer(size), info=_info(dev), progress=False,
                       on_step=on_step, image_features=cache)
        loss = res.history["loss"]
        sps = batch * (steps - 2) / (marks[1] - marks[0]) if len(marks) == 2 and marks[1] > marks[0] else None
        t = res.timings
        peak = PEAK_TFLOPS.get(next(((k, p) for k, p in PEAK_TFLOPS if k in name and p == precision), None), None)
        step_s = batch / sps if sps else None
        row = {"samples_per_s": round(sps, 1) if sps else None,
               "ms_per_phase": {k: round(1000 * t[f"{k}_s"] / max(1, t["steps_run"]), 2)
                                for k in ("data_wait", "render", "forward_backward", "optimizer")},
               "data_share": t["data_share"], "timer": t["timer"],
               "peak_memory_gib": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if dev.type == "cuda"
               else None,
               "mfu": round(flops / step_s / (peak * 1e12), 3) if (peak and step_s) else None,
               "final_loss": loss[-1], "finite": all(math.isfinite(v) for v in loss)}
        out[precision] = row
    out["ok"] = all(out[p]["finite"] for p in ("fp32", "tf32", "bf16"))
    return out


def _info(dev: torch.device):
    from clip2point.train.distributed import DistInfo

    return DistInfo(device=dev)


def syncs(dev: torch.device, tiny: bool) -> dict[str, Any]:
    from clip2point.configs import PretrainConfig
    from clip2point.train.pretrain import pretrain
    from clip2point.train.profiling import DispatchCounter

    model, text, pool, val, batch, steps, size = _setup(dev, True)  # op and sync counts do not depend on size
    cfg = PretrainConfig(epochs=1, batch_size=batch, warmup_steps=1, max_steps=steps, eval_every=100, log_every=4)
    counter = DispatchCounter()

    def on_step(step, scalars):
        counter.phase = step

    caught: list[str] = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        if dev.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            with counter:
                pretrain(model.visual, pool, val, text, cfg, _renderer(size), info=_info(dev), progress=False,
                         on_step=on_step)
        finally:
            if dev.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
        caught = sorted({str(x.message).splitlines()[0][:160] for x in w if "synchroniz" in str(x.message)})
    quiet = [s for s in range(1, steps) if (s + 1) % 4 != 0 and s + 1 < steps]
    per = {s: counter.syncs.get(s, 0) for s in quiet}
    return {"syncs_per_nonlogging_step": per, "sites": dict(counter.sync_sites.most_common(6)),
            "cuda_sync_warnings": caught[:6], "ok": all(v == 0 for v in per.values())}


def determinism(dev: torch.device, tiny: bool) -> dict[str, Any]:
    from clip2point.configs import PretrainConfig
    from clip2point.train.pretrain import pretrain

    model, text, pool, val, batch, _, size = _setup(dev, True)
    out: dict[str, Any] = {}
    for det in (False, True):
        torch.use_deterministic_algorithms(det, warn_only=True)
        try:
            cfg = PretrainConfig(epochs=1, batch_size=batch, warmup_steps=1, max_steps=5, eval_every=100,
                                 log_every=1, ckpt_every=1)
            with tempfile.TemporaryDirectory() as d:
                a = pretrain(model.visual, pool, val, text, cfg, _renderer(size), info=_info(dev), progress=False)
                b = pretrain(model.visual, pool, val, text, cfg, _renderer(size), info=_info(dev), progress=False)

                def kill_at_3(step, _sc):
                    if step == 3:
                        raise KeyboardInterrupt

                ck = Path(d) / "last.pt"
                with contextlib.suppress(KeyboardInterrupt):
                    pretrain(model.visual, pool, val, text, cfg, _renderer(size), info=_info(dev), progress=False,
                             checkpoint_path=ck, on_step=kill_at_3)
                c = pretrain(model.visual, pool, val, text, cfg, _renderer(size), info=_info(dev), progress=False,
                             checkpoint_path=ck, resume=True)
            same = a.history["loss"] == b.history["loss"]
            resumed = max(abs(x - y) for x, y in zip(a.history["loss"], c.history["loss"], strict=True))
            out["deterministic" if det else "default"] = {"twice_identical": same, "resume_max_diff": resumed,
                                                          "ok": resumed < 1e-5 and (same or not det)}
        finally:
            torch.use_deterministic_algorithms(False)
    out["ok"] = all(v["ok"] for v in out.values())
    return out


def cpu_vs_gpu(dev: torch.device) -> dict[str, Any]:
    if dev.type != "cuda":
        return {"skipped": "no CUDA device"}
    from clip2point.train.distributed import DistInfo
    from clip2point.train.objectives import step_loss
    from clip2point.train.pretrain_run import DepthPretrainModel

    model, text, pool, val, batch, _, size = _setup(torch.device("cpu"), True)
    losses = {}
    for d in (torch.device("cpu"), dev):
        visual = model.visual.to(d).eval().requires_grad_(False)
        m = DepthPretrainModel(visual).to(d)
        depth = _renderer(size)(pool.points[:batch].to(d), torch.arange(batch, device=d) % 10,
                                torch.ones(batch, device=d))
        batch_d = {"rgb": pool.rgb[:batch, 0], "depth1": depth, "depth2": depth.flip(-1)}
        loss, _ = step_loss("intra_cross", m, visual, m.sigma, batch_d, DistInfo(device=d), size=size,
                            temperature=0.07, precision="fp32")
        losses[d.type] = float(loss)
    diff = abs(losses["cpu"] - losses["cuda"])
    return {**losses, "abs_diff": diff, "ok": diff < 1e-4}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="gpu_smoke.json")
    ap.add_argument("--budget-s", type=float, default=420.0)
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    tiny = dev.type != "cuda"
    t0 = time.perf_counter()
    boxes = {"versions": 20, "distributed": 40, "render": 40, "pretrain": 200, "syncs": 40, "determinism": 60,
             "cpu_vs_gpu": 20}
    sections = {"versions": lambda: versions(dev), "distributed": lambda: distributed(dev),
                "render": lambda: render(dev), "pretrain": lambda: pretrain_throughput(dev, tiny),
                "syncs": lambda: syncs(dev, tiny), "determinism": lambda: determinism(dev, tiny),
                "cpu_vs_gpu": lambda: cpu_vs_gpu(dev)}
    report: dict[str, Any] = {}
    failed = False
    for name, fn in sections.items():
        left = args.budget_s - (time.perf_counter() - t0)
        if left <= 1:
            report[name] = {"timeout": "no budget left"}
            continue
        s0 = time.perf_counter()
        try:
            with time_box(min(boxes[name], left)):
                report[name] = fn()
        except SectionTimeout as e:
            report[name] = {"timeout": str(e)}
        except torch.cuda.OutOfMemoryError as e:
            report[name] = {"error": f"out of memory: {str(e).splitlines()[0][:200]}", "ok": False}
        except Exception as e:  # noqa: BLE001 - every section reports, the script goes on
            report[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                            "ok": False}
        report[name]["seconds"] = round(time.perf_counter() - s0, 1)
        failed |= report[name].get("ok") is False
    Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"{'section':<12} {'ok':<8} {'s':>6}  details")
    for name, r in report.items():
        status = "timeout" if "timeout" in r else "skip" if "skipped" in r else ("FAIL" if r.get("ok") is False
                                                                               else "ok")
        detail = {k: v for k, v in r.items() if k not in ("ok", "seconds")}
        print(f"{name:<12} {status:<8} {r['seconds']:>6}  {json.dumps(detail, default=str)[:400]}")
    print(f"gpu_smoke: {'FAILED' if failed else 'passed'} in {time.perf_counter() - t0:.0f} s -> {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
