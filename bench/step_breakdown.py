#!/usr/bin/env python
"""Where the time of one training step goes: data, backbone, ASPP, decoder, CE loss, projection
heads, Contextrast criterion (and BANE's share of it), optimizer.

Each part runs alone, forward + backward, on the inputs the full forward pass gave it (detached,
requiring gradient where the part's input does in training) and with a gradient of the right shape
on its outputs, so the parts' times add up to about one step; the full step is timed in the same
interleaved rounds for the comparison (the rest is autograd bookkeeping and what the isolated
parts repeat or skip). Rounds rotate through the parts, so load changes hit all of them alike;
the table gives medians. The data row is separate: the time the training loader's mapper
(decode, resize, crop, colour jitter) needs for one batch of the real dataset in this process,
i.e. the CPU work a loader worker does per step.

    python bench/step_breakdown.py --config configs/camvid/study/lite0_ce.yaml --threads 1
    python bench/step_breakdown.py --config configs/camvid/study/lite0_long_head.yaml --threads 1

Supports the DeepLabV3+ head (``SplitDeepLabV3PlusHead``: ASPP and decoder rows); other heads get
one "head" row.
"""

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch
from train_step import build_cfg, make_step, synthetic_batch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _grad_like(t: torch.Tensor) -> torch.Tensor:
    return torch.randn_like(t)


def _leaf(t: torch.Tensor, grad: bool) -> torch.Tensor:
    return t.detach().requires_grad_(grad)


def _fwd_bwd(fn: Callable[[], Dict[str, torch.Tensor]]) -> Callable[[], None]:
    """A part: run ``fn`` (returns its outputs), then backward with random output gradients."""

    def part() -> None:
        outs = [o for o in fn().values() if o.requires_grad]
        if outs:
            torch.autograd.backward(outs, [_grad_like(o) for o in outs])

    return part


def build_parts(model, batch: List[Dict], iteration: int) -> Dict[str, Callable[[], None]]:
    """The isolated parts of one training step of ``model`` (a ContextrastSegmentor) on
    ``batch``."""
    from detectron2.structures import ImageList

    head = model.sem_seg_head
    images = [model._normalize(x["image"]) for x in batch]
    images = model._layout(ImageList.from_tensors(images, model.size_divisibility).tensor)
    targets = ImageList.from_tensors(
        [x["sem_seg"] for x in batch], model.size_divisibility, head.ignore_value
    ).tensor
    features = model.backbone(images)  # with autograd: which outputs need a gradient
    needs_grad = {k: v.requires_grad for k, v in features.items()}  # False below FREEZE_AT
    features = {k: v.detach() for k, v in features.items()}
    with torch.no_grad():
        outputs = head.layers(features)
    parts = {"backbone": _fwd_bwd(lambda: model.backbone(images))}
    if hasattr(head, "decoder") and "aspp" in outputs:
        aspp_in, low_in = head.in_features[-1], head.in_features[0]
        res5 = _leaf(features[aspp_in], needs_grad[aspp_in])
        low = _leaf(features[low_in], needs_grad[low_in])
        aspp = _leaf(outputs["aspp"], True)
        parts["ASPP"] = _fwd_bwd(lambda: {"y": head.decoder[aspp_in]["project_conv"](res5)})

        def decoder():
            x = head.decoder[low_in]["project_conv"](low)
            y = torch.nn.functional.interpolate(
                aspp, size=x.shape[-2:], mode="bilinear", align_corners=False
            )
            return {"y": head.decoder[low_in]["fuse_conv"](torch.cat([x, y], dim=1))}

        parts["decoder"] = _fwd_bwd(decoder)
        fused = _leaf(outputs["decoder"], True)
        parts["classifier + CE loss"] = _fwd_bwd(
            lambda: head.losses({"sem_seg": head.predictor(fused)}, targets)
        )
    else:
        feats = {k: _leaf(v, needs_grad[k]) for k, v in features.items()}
        parts["head + CE loss"] = _fwd_bwd(lambda: head.losses(head.layers(feats), targets))
    if model.criterion is not None:
        source = outputs if model.feature_source == "head" else features
        inputs = {name: _leaf(source[name], True) for name in model.contrast_heads}
        for name, proj in model.contrast_heads.items():
            parts[f"projection head {name}"] = _fwd_bwd(lambda p=proj, n=name: {"e": p(inputs[n])})
        with torch.no_grad():
            emb = {name: proj(inputs[name]) for name, proj in model.contrast_heads.items()}
        emb = {k: _leaf(v, True) for k, v in emb.items()}
        logits = outputs["sem_seg"]
        parts["criterion (anchors, sampling, BANE, loss)"] = _fwd_bwd(
            lambda: model.criterion(emb, logits, targets, iteration=iteration)[0]
        )
        parts.update(criterion_parts(model.criterion, emb, logits, targets))
    return parts


def criterion_parts(criterion, emb: Dict[str, torch.Tensor], logits, targets) -> Dict:
    """Rows *inside* the criterion row, at its largest layer: the class anchors (forward +
    backward) and BANE's selection (no gradient); prefixed "in criterion:"."""
    import torch.nn.functional as F

    from contextrast.modeling.contrast.anchors import class_anchors
    from contextrast.modeling.contrast.bane import select_boundary_negatives

    name = max(emb, key=lambda k: emb[k].shape[-2] * emb[k].shape[-1])
    e = emb[name]
    size = tuple(e.shape[-2:])
    gt = F.interpolate(targets[:, None].float(), size=size, mode="nearest")[:, 0].long()
    pred = F.interpolate(logits.argmax(1)[:, None].float(), size=size, mode="nearest")[:, 0].long()
    flat = e.permute(0, 2, 3, 1).reshape(-1, e.shape[1])
    rows = {
        f"in criterion: class anchors ({name})": _fwd_bwd(
            lambda: {"a": class_anchors(flat, gt.flatten(), criterion.num_classes)[0]}
        )
    }
    if criterion.bane_enabled:

        def bane():
            select_boundary_negatives(
                pred, gt, num_classes=criterion.num_classes, ignore_value=criterion.ignore_value,
                top_k_ratio=criterion.bane_top_k_ratio, reading=criterion.bane_error_map,
                tie_break=criterion.bane_tie_break,
            )  # fmt: skip
            return {}

        rows[f"in criterion: BANE selection ({name})"] = bane
    return rows


def data_batch_seconds(cfg, batches: int) -> List[float]:
    """Seconds per batch of the training mapper on the real dataset, in this process."""
    from contextrast.engine import ContextrastTrainer

    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATALOADER.NUM_WORKERS = 0
    loader = iter(ContextrastTrainer.build_train_loader(cfg))
    next(loader)  # dataset registration and sampler start-up
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        next(loader)
        times.append(time.perf_counter() - t0)
    return times


def run(args) -> Dict:
    from detectron2.modeling import build_model
    from detectron2.solver import build_optimizer
    from detectron2.utils.events import EventStorage

    import contextrast  # noqa: F401  (registers the project's modules)

    opts = ["MODEL.SEM_SEG_HEAD.NORM", "BN"] + list(args.opts)  # SyncBN needs a process group
    cfg = build_cfg(args.config, "cpu", opts)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer = build_optimizer(cfg, model)
    batch = synthetic_batch(
        batch=args.batch, size=tuple(args.size), num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        ignore=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE, device="cpu", seed=1,
    )  # fmt: skip
    step = make_step(model, optimizer, batch, amp=False)
    times: Dict[str, List[float]] = {}
    with EventStorage(0) as storage:
        for i in range(args.warmup):
            step(i + 1)
        it = args.warmup + 1
        storage.iter = it
        parts = {"full step": lambda: step(it)}
        parts.update(build_parts(model, batch, it))
        parts["optimizer step"] = optimizer.step
        times = {k: [] for k in parts}
        for r in range(args.rounds):
            names = list(parts)
            names = names[r % len(names) :] + names[: r % len(names)]
            for name in names:
                optimizer.zero_grad(set_to_none=False)
                t0 = time.perf_counter()
                parts[name]()
                times[name].append((time.perf_counter() - t0) * 1000.0)
    result = {
        "config": args.config,
        "opts": list(args.opts),
        "batch": args.batch,
        "size": list(args.size),
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "loadavg_1m": os.getloadavg()[0],
        "parts_ms": {k: statistics.median(v) for k, v in times.items()},
        "times_ms": times,
    }
    if args.data_batches:
        cfg_data = build_cfg(args.config, "cpu", list(args.opts))
        try:
            secs = data_batch_seconds(cfg_data, args.data_batches)
            result["data_ms"] = statistics.median(secs) * 1000.0
        except (FileNotFoundError, KeyError) as e:  # dataset not on this machine
            result["data_error"] = str(e)
    return result


def format_table(result: Dict) -> str:
    full = result["parts_ms"]["full step"]
    lines = [
        f"{result['config']} {' '.join(result['opts'])}: batch {result['batch']}, "
        f"{result['size'][0]}x{result['size'][1]}, {result['threads']} thread(s), "
        f"{result['rounds']} interleaved rounds, load average {result['loadavg_1m']:.1f}",
        f"{'part (forward + backward)':<46} {'median ms':>10} {'of step':>8}",
    ]
    parts = [(k, v) for k, v in result["parts_ms"].items() if k != "full step"]
    summed = sum(v for k, v in parts if not k.startswith("in criterion:"))
    for name, ms in parts + [("sum of the parts (not the in-criterion rows)", summed)]:
        lines.append(f"{name:<46} {ms:>10.1f} {ms / full:>8.1%}")
    lines.append(f"{'full step (timed in the same rounds)':<46} {full:>10.1f} {1:>8.1%}")
    if "data_ms" in result:
        lines.append(
            f"{'data: one batch of the training mapper':<46} {result['data_ms']:>10.1f} "
            f"{result['data_ms'] / full:>8.1%}"
        )
    elif "data_error" in result:
        lines.append(f"data: not measured ({result['data_error']})")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="the recipe's config file")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), help="input H W")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--warmup", type=int, default=2, help="full steps before timing")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--data-batches", type=int, default=10, help="real-data batches to time (0: skip)"
    )
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
