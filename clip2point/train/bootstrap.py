"""Miniature CLIP bootstrap: train an open_clip CLIP on RGB renders and captions (plays CLIP's role, §3.1).

No pretrained CLIP weights can be had offline, so the embedded default trains a small CLIP (same class, same
tokenizer) contrastively on the pre-training pool's RGB renders, each of the 10 views a separate image,
paired with captions ``template.format(class)``. It never sees a depth map: like CLIP, its image side knows
images only, and the image–depth domain gap that CLIP2Point closes (§3.2) is there to be measured.

Objective: CLIP's symmetric image–text InfoNCE with a class-aware multi-positive target
(:func:`clip2point.losses.multi_positive_contrastive`): every caption of an image's class is a positive.
With ~10 classes, plain CLIP targets would make most in-batch pairs false negatives. All captions
(K classes × T templates) take part in every step; the learnable logit scale is CLIP's.

Text tower: by default locked at its random initialisation (``text_lr_mult = 0``, LiT's recipe with the
roles swapped). Trained jointly from scratch it collapses within ~10 steps: the random image tower maps all
renders to nearly one point (cosine ≈ 0.99), so the loss is minimised by captions that all coincide, after
which no gradient separates anything (loss pinned at its uniform value; measured). The random text tower
already gives distinct class embeddings (mean cosine ≈ 0.67 between classes); the image tower learns to
land on them. ``text_lr_mult > 0`` trains the text tower too, at ``lr × text_lr_mult``.

Augmentation (RGB only): random resized crop (scale 0.6–1), horizontal flip, brightness / contrast /
saturation jitter, all as batched tensor ops.

Selection: zero-shot accuracy on the pre-training pool's validation split (RGB, the evaluation prompt),
never on a downstream split.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from clip2point.configs import BootstrapConfig  # noqa: F401 - re-exported
from clip2point.evaluate import zero_shot_logits
from clip2point.losses import multi_positive_contrastive
from clip2point.models.clip import clip_normalize, encode_rgb_views, image_size, text_features
from clip2point.train.optim import build_optimizer, cosine_with_warmup, param_groups


@dataclass
class RgbSet:
    rgb: Tensor  # (M, V, H, W, 3) uint8
    labels: Tensor  # (M,)


@dataclass
class BootstrapResult:
    state_dict: dict[str, Tensor]
    metrics: dict[str, Any]  # results only: the same bytes on every run of the same inputs
    history: dict[str, list] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)  # wall-clock (never in the metrics)


def augment_batch(x: Tensor, g: torch.Generator) -> Tensor:
    """RGB in [0, 1] (B, 3, S, S): random resized crop (scale 0.6–1, aspect 3/4–4/3), flip, colour jitter."""
    b = x.shape[0]
    r = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    area = 0.6 + 0.4 * r(b)
    log_ratio = (r(b) * 2 - 1) * math.log(4 / 3)
    sx = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
    sy = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
    tx = (r(b) * 2 - 1) * (1 - sx)
    ty = (r(b) * 2 - 1) * (1 - sy)
    flip = torch.where(r(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = sx * flip
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    # pad with white (the renders' background): sample (x - 1) with zero padding, add 1 back
    x = F.grid_sample(x - 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 1
    bright = (0.75 + 0.5 * r(b)).view(b, 1, 1, 1).to(x)
    contrast = (0.75 + 0.5 * r(b)).view(b, 1, 1, 1).to(x)
    sat = (0.6 + 0.8 * r(b)).view(b, 1, 1, 1).to(x)
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    x = grey + (x - grey) * sat
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    return (x * bright).clamp(0, 1)


def _to_unit(rgb: Tensor, size: int) -> Tensor:
    x = rgb.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


@torch.no_grad()
def rgb_zero_shot(visual: nn.Module, data: RgbSet, text: Tensor, batch_size: int = 256) -> dict[str, float]:
    """Zero-shot accuracy on RGB renders: per single view, and per shape over all views (Eq. 15's mean)."""
    was = visual.training
    visual.eval()
    feats = encode_rgb_views(visual, data.rgb, batch_size=batch_size)  # (M, V, C), L2-normalised
    logits = torch.einsum("mvc,kc->mvk", feats, text.to(feats.device).float())
    labels = data.labels.to(logits.device)
    per_view = (logits.argmax(-1) == labels[:, None]).float().mean()
    multi = (zero_shot_logits(feats, text.to(feats.device), normalize=False).argmax(-1) == labels).float().mean()
    visual.train(was)
    return {"per_view": float(per_view), "multi_view": float(multi)}


def bootstrap_clip(
    model: nn.Module,
    tokenizer: Any,
    train: RgbSet,
    val: RgbSet,
    class_names: Sequence[str],
    caption_templates: Sequence[str],
    eval_templates: Sequence[str],
    cfg: BootstrapConfig,
    *,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = True,
) -> BootstrapResult:
    """Train ``model`` (open_clip CLIP) in place on RGB renders + captions; returns the selected weights."""
    torch.manual_seed(cfg.seed)
    dev = next(model.parameters()).device
    size = image_size(model.visual)
    m, v = train.rgb.shape[:2]
    n_images = m * v
    flat_rgb = train.rgb.reshape(n_images, *train.rgb.shape[2:])
    flat_lab = train.labels.repeat_interleave(v)
    steps_per_epoch = n_images // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {n_images} training images")
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    n_epochs = math.ceil(total / steps_per_epoch)
    k = len(class_names)
    captions = [t.format(c.replace("_", " ")) for c in class_names for t in caption_templates]
    caption_tokens = tokenizer(captions).to(dev)
    caption_labels = torch.arange(k, device=dev).repeat_interleave(len(caption_templates))

    locked_text = cfg.text_lr_mult <= 0
    for n, p in model.named_parameters():
        if not n.startswith("visual.") and n != "logit_scale":
            p.requires_grad_(not locked_text)
    groups = param_groups(model.visual, cfg.lr, cfg.weight_decay)
    text_tower = nn.ModuleDict({n: mod for n, mod in model.named_children() if n != "visual"})
    for g in param_groups(text_tower, cfg.lr * cfg.text_lr_mult, cfg.weight_decay):
        g["name"] = "text_" + g["name"]
        groups.append(g)
    # the CLIP's own parameters: text positional embedding and projection, logit scale
    direct = dict(model.named_parameters(recurse=False))
    text_direct = [p for n, p in direct.items() if n != "logit_scale" and p.requires_grad]
    text_lr = cfg.lr * cfg.text_lr_mult
    if text_direct:
        groups.append({"params": text_direct, "lr": text_lr, "weight_decay": 0.0, "name": "text_direct"})
    groups = [g for g in groups if g["params"]]
    groups.append({"params": [direct["logit_scale"]], "lr": cfg.lr, "weight_decay": 0.0, "name": "scale"})
    optimizer = build_optimizer(cfg.optimizer, groups, cfg.lr)
    if cfg.optimizer == "adamw":
        for g in optimizer.param_groups:
            g["betas"], g["eps"] = (0.9, 0.98), 1e-6  # CLIP's AdamW settings
    scheduler = cosine_with_warmup(optimizer, cfg.warmup_steps, total)
    history: dict[str, list] = {"step": [], "loss": [], "logit_scale": [], "lr": []}
    evals: list[dict[str, float]] = []
    best: dict[str, Any] = {"acc": -1.0, "step": -1, "state": None}

    def evaluate(step: int) -> None:
        model.eval()
        text = text_features(model, tokenizer, class_names, eval_templates)
        acc = rgb_zero_shot(model.visual, val, text, cfg.eval_batch_size)
        model.train()
        evals.append({"step": step, "val_rgb_per_view": acc["per_view"],
                      "val_rgb_multi_view": acc["multi_view"]})
        if step > 0 and acc["per_view"] > best["acc"]:
            best.update(acc=acc["per_view"], step=step,
                        state={k2: t.detach().cpu().clone() for k2, t in model.state_dict().items()})
        if on_eval is not None:
            on_eval(step, evals[-1])

    model.train()
    t_start = time.perf_counter()
    step = 0
    for epoch in range(n_epochs):
        perm = torch.randperm(n_images, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
        n_steps = min(steps_per_epoch, total - step)
        bar = tqdm(range(n_steps), desc=f"clip_bootstrap epoch {epoch + 1}/{n_epochs}", unit="step",
                   disable=not progress, leave=False, dynamic_ncols=True)
        for i in bar:
            t0 = time.perf_counter()
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + 11)
            x = _to_unit(flat_rgb[idx], size)
            if cfg.augment:
                x = augment_batch(x, g)
            x = clip_normalize(x).to(dev)
            img = model.encode_image(x)
            if locked_text:
                with torch.no_grad():
                    txt = model.encode_text(caption_tokens)
            else:
                txt = model.encode_text(caption_tokens)
            scale = model.logit_scale.exp().clamp(max=100.0)
            loss = multi_positive_contrastive(img, txt, flat_lab[idx].to(dev), caption_labels, scale)
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"clip_bootstrap: loss became {float(loss)} at step {step + 1}; lower bootstrap.lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            step += 1
            dt = time.perf_counter() - t0
            sc = {"loss": float(loss.detach()), "logit_scale": float(scale.detach()),
                  "lr": optimizer.param_groups[0]["lr"], "images_per_s": len(idx) / dt}
            for key in ("loss", "logit_scale", "lr"):
                history[key].append(sc[key])
            history["step"].append(step)
            bar.set_postfix({"loss": f"{sc['loss']:.3f}", "scale": f"{sc['logit_scale']:.1f}",
                             "lr": f"{sc['lr']:.1e}", "img/s": f"{sc['images_per_s']:.0f}"}, refresh=False)
            if on_step is not None:
                on_step(step, sc)
        bar.close()
        if (epoch + 1) % max(1, cfg.eval_every) == 0 or step == total:
            evaluate(step)
    wall = time.perf_counter() - t_start
    if best["state"] is None:
        best["state"] = copy.deepcopy(model.state_dict())
    metrics = {
        "steps": total,
        "epochs": n_epochs,
        "images_per_epoch": n_images,
        "batch_size": cfg.batch_size,
        "val_rgb_best_per_view": best["acc"],
        "best_step": best["step"],
        "val_curve": evals,
        "final_loss": history["loss"][-1] if history["loss"] else None,
    }
    return BootstrapResult(state_dict=best["state"], metrics=metrics, history=history,
                           timings={"train_wall_s": round(wall, 2)})
