#!/usr/bin/env python
"""Cost of BANE: the distance transform and the selection alone, and BANE's share of a step.

1. Distance transform of class-wise error maps on the chosen device vs
   ``scipy.ndimage.distance_transform_edt`` map by map on the CPU (the reference;
   single-threaded). ``edt (label map)`` is what training runs: BANE's
   ``squared_distance_to_other_label`` (``contextrast.modeling.contrast.edt``) on the disjoint
   maps of an image as one label map. ``edt`` is the per-map transform BANE used before
   (``bench/binary_edt.py``, kept as a reference), on every (image, class) map. Default shape:
   batch 8, 19 classes, 128x256 = the stride-4 maps of a 512x1024 Cityscapes crop. Two kinds of
   maps:
     realistic  error maps ``[pred = n, gt != n]`` of a Voronoi ground truth (40 regions per image,
                random classes) against a blocky prediction (the ground truth sampled every 8
                pixels and repeated, 10% of the 8x8 blocks given a random class): staircase
                errors along every boundary plus whole wrong blocks, about 20% of the pixels.
     dense      i.i.d. random maps, each pixel foreground with probability 0.5 (worst case for
                the number of non-empty maps, easy for distances).
   Every implementation is checked for exact equality with scipy. ``--baseline-edt FILE`` adds
   another per-map ``squared_distance_transform`` (e.g. an older ``edt.py``) to the same
   interleaved rounds, for before/after numbers.
2. The whole BANE selection (``select_boundary_negatives``: error regions, EDT of the label map,
   per-map ranking); ``--baseline-bane FILE`` (e.g. an older ``bane.py``) is timed side by side and
   must select the same pixels.
3. BANE's share of a training step of a ``train_step.py`` preset: ``select_boundary_negatives``
   is timed inside the criterion (CUDA events on the GPU) over the timed steps of the
   ``CE + CCL + BANE`` variant, and divided by the step time (alternating with the baseline
   selection when one is given).

Rounds are interleaved (one call of every implementation per round) and medians reported, so load
changes on a shared machine hit all implementations alike. ``--threads 1 2`` times the torch
implementations at each intra-op thread count inside the same rounds (the step of part 3 runs with
the first count).

    python bench/bane.py                                  # CPU, default shapes, demo network
    python bench/bane.py --device cuda --step-preset hrnet_gpu
    git show f568da8:projects/Contextrast/contextrast/modeling/contrast/edt.py > /tmp/edt_old.py
    python bench/bane.py --baseline-edt /tmp/edt_old.py --threads 1 2
    git show c1c4469:projects/Contextrast/contextrast/modeling/contrast/bane.py > /tmp/bane_old.py
    python bench/bane.py --baseline-bane /tmp/bane_old.py --threads 1
"""

import argparse
import inspect
import json
import os
import statistics
import sys
import time
from typing import Callable, Dict, List

import numpy as np
import torch
from bane_timing import (  # sibling module of this script
    IGNORE_VALUE,
    interleaved,
    label_map,
    load_bane,
    load_edt,
    profile_table,
    realistic_case,
    scipy_edt2,
    with_threads,
)


def bench_edt(args, maps_by_kind: Dict[str, torch.Tensor]) -> Dict:
    """Part 1: EDT implementations vs scipy, checked for exactness.

    ``edt (label map)`` transforms the disjoint maps of an image at once as one label map (what
    BANE runs in training), and is checked against scipy on the pixels of every map; ``edt``
    (the per-map reference of ``bench/binary_edt.py``) transforms every (image, class) map.
    """
    from binary_edt import squared_distance_transform  # sibling module of this script

    from contextrast.modeling.contrast.edt import squared_distance_to_other_label

    impls = {"edt": squared_distance_transform}
    if args.baseline_edt:
        impls["baseline_edt"] = load_edt(args.baseline_edt)
    results = {}
    for kind, maps in maps_by_kind.items():
        host = maps.numpy().reshape(-1, *maps.shape[-2:])
        reference = scipy_edt2(host)
        dev = maps.to(args.device)
        fns = {"scipy": lambda: scipy_edt2(host)}
        for name, impl in impls.items():
            out = impl(dev).cpu().numpy().reshape(reference.shape)
            if not np.array_equal(out, reference):
                raise AssertionError(f"{name} differs from scipy on the {kind} maps")
            for t in args.threads or [None]:
                label = name if t is None else f"{name} ({t} thr)"
                fns[label] = with_threads(lambda impl=impl, dev=dev: impl(dev), t)
        if int(maps.sum(1).max()) <= 1:  # disjoint maps: one label map per image
            labels = label_map(maps).to(args.device)
            n = maps.shape[1]
            out = squared_distance_to_other_label(labels, ignore_label=n).cpu().numpy()
            ref = reference.reshape(maps.shape)
            for b, c in zip(*np.nonzero(maps.flatten(-2).any(-1).numpy())):
                m = maps[b, c].numpy()
                if not np.array_equal(out[b][m], ref[b, c][m]):
                    raise AssertionError(f"label-map EDT differs from scipy, {kind} map {b},{c}")

            def by_label(labels=labels, n=n):
                return squared_distance_to_other_label(labels, ignore_label=n)

            for t in args.threads or [None]:
                label = "edt (label map)" + ("" if t is None else f" ({t} thr)")
                fns[label] = with_threads(by_label, t)
        timing = interleaved(fns, args.rounds, args.device)
        if args.profile:
            for label, fn in fns.items():
                if label != "scipy":
                    print(f"--- {label}, {kind} maps:\n{profile_table(fn, args.device)}")
        nonempty = int(maps.flatten(-2).any(-1).sum())
        results[kind] = {
            "shape": list(maps.shape),
            "nonempty_maps": nonempty,
            "foreground_fraction": float(maps.float().mean()),
            "max_distance": float(np.sqrt(reference.max())),
            "timing": timing,
        }
    return results


def _raster_ties(select: Callable) -> Dict[str, str]:
    """Keyword that makes a selection break distance ties in raster order (deterministic), for
    versions of ``select_boundary_negatives`` that break them at random; {} for older ones."""
    return {"tie_break": "raster"} if "tie_break" in inspect.signature(select).parameters else {}


def bench_selection(args, pred: torch.Tensor, gt: torch.Tensor) -> Dict:
    """Part 2: the whole BANE selection."""
    from contextrast.modeling.contrast.bane import select_boundary_negatives

    pred, gt = pred.to(args.device), gt.to(args.device)

    kw = dict(num_classes=args.classes, ignore_value=IGNORE_VALUE, top_k_ratio=0.5)
    selections = {"select": select_boundary_negatives}
    if args.baseline_bane:
        selections["baseline select"] = load_bane(args.baseline_bane)
    fns = {}
    for name, fn in selections.items():

        def select(fn=fn):
            return fn(pred, gt, **kw)

        if args.baseline_bane:  # both must select the same pixels, ties in raster order
            a = select_boundary_negatives(pred, gt, **_raster_ties(select_boundary_negatives), **kw)
            b = fn(pred, gt, **_raster_ties(fn), **kw)
            if not torch.equal(a.negatives, b.negatives):
                raise AssertionError(f"{name} selects other pixels than the current BANE")
        for t in args.threads or [None]:
            fns[name if t is None else f"{name} ({t} thr)"] = with_threads(select, t)
    return interleaved(fns, args.rounds, args.device)


def bench_step_share(args) -> Dict:
    """Part 3: time inside select_boundary_negatives / step time, CE + CCL + BANE variant.

    With ``--baseline-bane``, rounds alternate between the current selection and the baseline
    one (patched into the criterion), so both shares come from one run.
    """
    from detectron2.utils.events import EventStorage
    from train_step import PRESETS, build_variant, make_step, synthetic_batch, timed

    import contextrast.modeling.contrast.criterion as criterion_module

    preset = PRESETS[args.step_preset]
    cuda = preset.device == "cuda"
    model, opt, cfg = build_variant(preset, "ccl_bane", [])
    batch = synthetic_batch(
        batch=preset.batch, size=preset.size, num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        ignore=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE, device=preset.device, seed=1,
    )  # fmt: skip
    step = make_step(model, opt, batch, amp=cfg.SOLVER.AMP.ENABLED)
    original = criterion_module.select_boundary_negatives
    selections = {"bane": original}
    if args.baseline_bane:
        selections["baseline_bane"] = load_bane(args.baseline_bane)
    spans: List = []

    def timed_selection(fn: Callable) -> Callable:
        def call(*a, **kw):
            if cuda:
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                out = fn(*a, **kw)
                end.record()
                spans.append((start, end))
            else:
                t0 = time.perf_counter()
                out = fn(*a, **kw)
                spans.append(1000 * (time.perf_counter() - t0))
            return out

        return call

    per_impl = {k: {"step_ms": [], "bane_ms": [], "share": []} for k in selections}
    threads_before = torch.get_num_threads()
    if args.threads:  # the step runs with the first thread count of --threads
        torch.set_num_threads(args.threads[0])
    try:
        with EventStorage(0):
            it = 0
            for fn in selections.values():
                criterion_module.select_boundary_negatives = timed_selection(fn)
                for _ in range(args.step_warmup):
                    it += 1
                    step(it)
            names = list(selections)
            for r in range(args.step_rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    criterion_module.select_boundary_negatives = timed_selection(selections[name])
                    spans.clear()
                    it += 1
                    ms = timed(step, it, cuda)
                    if cuda:
                        inside = sum(start.elapsed_time(end) for start, end in spans)
                    else:
                        inside = sum(spans)
                    per_impl[name]["step_ms"].append(ms)
                    per_impl[name]["bane_ms"].append(inside)
                    per_impl[name]["share"].append(inside / ms)
    finally:
        criterion_module.select_boundary_negatives = original
        torch.set_num_threads(threads_before)
    return {
        "preset": args.step_preset,
        "config": preset.config,
        "batch": preset.batch,
        "size": list(preset.size),
        "layers": list(cfg.MODEL.CONTEXTRAST.IN_FEATURES),
        "threads": args.threads[0] if args.threads else threads_before,
        "by_impl": {
            name: {
                "step_median_ms": statistics.median(v["step_ms"]),
                "bane_median_ms": statistics.median(v["bane_ms"]),
                "bane_share_median": statistics.median(v["share"]),
                "bane_share_max": max(v["share"]),
            }
            for name, v in per_impl.items()
        },
    }


def format_report(result: Dict) -> str:
    lines = [
        f"device {result['device']}, torch threads {result['torch_threads']}, "
        f"{result['rounds']} interleaved rounds, load average {result['loadavg_1m']:.1f}"
    ]
    for kind, r in result["edt"].items():
        lines.append(
            f"EDT, {kind} maps {tuple(r['shape'])}, {r['nonempty_maps']} non-empty, "
            f"foreground {100 * r['foreground_fraction']:.1f}%, "
            f"max distance {r['max_distance']:.1f}"
        )
        scipy_ms = r["timing"]["scipy"]["wall_ms"]
        for name, t in r["timing"].items():
            lines.append(
                f"  {name:<24} wall {t['wall_ms']:9.1f} ms  cpu {t['cpu_ms']:9.1f} ms  "
                f"scipy/this {scipy_ms / t['wall_ms']:6.2f}x"
                + ("  (what BANE runs)" if name.startswith("edt (label map)") else "")
            )
    for name, t in result["selection"].items():
        lines.append(
            f"BANE selection {name:<14} wall {t['wall_ms']:9.1f} ms  cpu {t['cpu_ms']:9.1f} ms"
        )
    s = result.get("step_share")
    if s:
        lines.append(
            f"BANE in a training step ({s['preset']}, batch {s['batch']}, "
            f"{s['size'][0]}x{s['size'][1]}, layers {s['layers']}, {s['threads']} thr):"
        )
        for name, e in s["by_impl"].items():
            lines.append(
                f"  {name:<13} {e['bane_median_ms']:.1f} ms of {e['step_median_ms']:.1f} ms, "
                f"share median {100 * e['bane_share_median']:.2f}% "
                f"(max {100 * e['bane_share_max']:.2f}%)"
            )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="device of the torch EDT / selection")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--size", type=int, nargs=2, default=[128, 256], help="map H W")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", help="torch intra-op thread counts")
    parser.add_argument("--baseline-edt", help="another edt.py to time side by side")
    parser.add_argument(
        "--baseline-bane", help="another bane.py: its selection is timed side by side (parts 2, 3)"
    )
    parser.add_argument("--step-preset", default="demo", help="train_step.py preset; 'none' = skip")
    parser.add_argument("--step-warmup", type=int, default=2)
    parser.add_argument("--step-rounds", type=int, default=5)
    parser.add_argument(
        "--profile", action="store_true", help="print a torch.profiler table of each torch EDT"
    )
    parser.add_argument("--json", help="write the result here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    from contextrast.modeling.contrast.bane import error_maps

    args = parse_args(argv)
    pred, gt = realistic_case(batch=args.batch, num_classes=args.classes, size=tuple(args.size))
    maps, _, _ = error_maps(pred, gt, args.classes, IGNORE_VALUE, "fp")
    g = torch.Generator().manual_seed(1)
    dense = torch.rand(maps.shape, generator=g) < 0.5
    result = {
        "device": (
            torch.cuda.get_device_name(0)
            if args.device == "cuda"
            else f"cpu ({os.cpu_count()} cores)"
        ),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rounds": args.rounds,
        "loadavg_1m": os.getloadavg()[0],
        "edt": bench_edt(args, {"realistic": maps, "dense": dense}),
        "selection": bench_selection(args, pred, gt),
    }
    if args.step_preset != "none":
        result["step_share"] = bench_step_share(args)
    result["loadavg_1m_end"] = os.getloadavg()[0]
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
