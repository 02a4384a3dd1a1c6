#!/usr/bin/env python
"""Training-step cost of Contextrast: time and peak memory of CE only, + CCL and + CCL + BANE.

The three variants are the same network (same config, same initial weights: the projection heads
are built after everything else) on the same synthetic batch. After a warm-up, the variants are
timed in interleaved rounds (round r times one step of each variant, in rotating order), so that
load changes on a shared machine hit all of them alike; the table gives the median, the
interquartile range and the ratio of medians to CE only, of the wall time and (CPU runs) of the
process CPU time, which a loaded machine disturbs less.

A step is what ``SimpleTrainer.run_step`` does: forward with losses, sum, ``zero_grad``, backward,
``optimizer.step()``, with detectron2's SGD from ``SOLVER.*`` and an ``EventStorage`` whose
iteration advances, so the criterion's periodic statistics logging (every 20 iterations) happens
at its real rate. On CUDA a step is timed with CUDA events; on the CPU with ``perf_counter``.

Peak memory:
    CUDA  ``torch.cuda.max_memory_allocated`` during one step minus the memory allocated before it
          (activations, gradients, workspaces), plus the model's own state (parameters + SGD
          momentum), reported separately.
    CPU   there is no allocator statistic: every variant runs in a fresh process that reports
          the peak resident set size (``ru_maxrss``) over 3 steps minus the resident set size
          just before its first step. Noisier than the CUDA figure (allocator caching).

    python bench/train_step.py --preset demo
    python bench/train_step.py --preset hrnet_cpu --rounds 5
    python bench/train_step.py --preset hrnet_gpu          # HRNetV2-W48, 512x1024, batch 8

``--configs NAME=CONFIG ...`` times whole recipes against each other instead (each variant its own
config file, e.g. an old and a new recipe of the same study), on the preset's batch and input;
ratios are to the first one:

    python bench/train_step.py --preset lite0_cpu --threads 1 --no-memory --configs \
        old=configs/camvid/study/lite0_ce.yaml new=configs/camvid/study/lite0_fast_ce.yaml

Labels are blocky random class maps (one class per 32x32 cell, 5% ignore pixels), so CCL and BANE
see many classes and sizeable error regions, as early in training.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
VARIANTS = {
    "ce": ["MODEL.CONTEXTRAST.ENABLED", "False"],
    "ccl": ["MODEL.CONTEXTRAST.BANE.ENABLED", "False"],
    "ccl_bane": [],
}
LABELS = {
    "ce": "CE only",
    "ccl": "CE + CCL",
    "ccl_bane": "CE + CCL + BANE",
    "ccl_bane_baseline_loss": "CE+CCL+BANE, --baseline-loss",
}


@dataclass(frozen=True)
class Preset:
    """Network config, batch and input size of one benchmark."""

    config: str
    batch: int
    size: Tuple[int, int]
    device: str
    opts: Sequence[str] = field(default_factory=tuple)


_BN = ["MODEL.HRNET.NORM", "BN", "MODEL.SEM_SEG_HEAD.NORM", "BN"]  # SyncBN needs a process group
_LITE0 = ["MODEL.WEIGHTS", "", "MODEL.SEM_SEG_HEAD.NORM", "BN"]
PRESETS = {
    "demo": Preset("configs/demo/contextrast.yaml", 8, (128, 128), "cpu"),
    "study_cpu": Preset("configs/camvid/study_cpu.yaml", 8, (160, 160), "cpu"),
    "hrnet_cpu": Preset("configs/cityscapes/hrnet_w48_contextrast.yaml", 2, (256, 512), "cpu", _BN),
    "hrnet_gpu": Preset(
        "configs/cityscapes/hrnet_w48_contextrast.yaml", 8, (512, 1024), "cuda", _BN
    ),
    # The lite0 CamVid study's step (bench/camvid_study.py --preset lite0): 128-d embeddings.
    "lite0_cpu": Preset(
        "configs/camvid/lite0_deeplabv3plus_contextrast.yaml",
        8,
        (240, 320),
        "cpu",
        _LITE0 + ["MODEL.CONTEXTRAST.PROJ_DIM", "128"],
    ),
    # The same with the paper's 256-d embeddings (the lite0 configs' default).
    "lite0_cpu_d256": Preset(
        "configs/camvid/lite0_deeplabv3plus_contextrast.yaml", 8, (240, 320), "cpu", _LITE0
    ),
}


def build_cfg(config: str, device: str, opts: Sequence[str]):
    """Project config from ``config`` + ``opts`` on ``device`` (no dataset is read)."""
    from contextrast.config import get_contextrast_cfg

    cfg = get_contextrast_cfg()
    cfg.merge_from_file(os.path.join(ROOT, config))
    cfg.merge_from_list(list(opts) + ["MODEL.DEVICE", device, "MODEL.WEIGHTS", ""])
    cfg.freeze()
    return cfg


def synthetic_batch(
    *, batch: int, size: Tuple[int, int], num_classes: int, ignore: int, device: str, seed: int
) -> List[Dict]:
    """detectron2 records with random 0-255 images and blocky random labels."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    cells = (max(1, h // 32), max(1, w // 32))
    records = []
    for _ in range(batch):
        coarse = torch.randint(0, num_classes, (1, 1) + cells, generator=g).float()
        label = torch.nn.functional.interpolate(coarse, size=size, mode="nearest")[0, 0].long()
        label[torch.rand(size, generator=g) < 0.05] = ignore
        image = torch.randint(0, 256, (3, h, w), generator=g).float()
        records.append({"image": image.to(device), "sem_seg": label.to(device)})
    return records


def preset_batch(args, preset: Preset, cfg) -> List[Dict]:
    """The preset's synthetic batch (``--batch`` / ``--size`` override its size)."""
    return synthetic_batch(
        batch=args.batch or preset.batch, size=tuple(args.size or preset.size),
        num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, ignore=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        device=preset.device, seed=1,
    )  # fmt: skip


def build_variant(
    preset: Preset, variant: str, extra_opts: Sequence[str], config: Optional[str] = None
):
    """(model in train mode, optimizer, cfg) of one variant; same initial weights for all.

    ``config``: a recipe's own config file (``--configs``) instead of the preset's config plus
    the variant's overrides."""
    from detectron2.modeling import build_model
    from detectron2.solver import build_optimizer

    import contextrast  # noqa: F401  (registers the project's modules)

    opts = list(preset.opts) + list(extra_opts)
    if config is None:
        config = preset.config
        opts += VARIANTS["ccl_bane" if variant == "ccl_bane_baseline_loss" else variant]
    cfg = build_cfg(config, preset.device, opts)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    return model, build_optimizer(cfg, model), cfg


def load_function(path: str, name: str) -> Callable:
    """Function ``name`` of a standalone copy of a module of ``contextrast.modeling.contrast``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("contextrast.modeling.contrast._baseline", path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "contextrast.modeling.contrast"  # its relative imports resolve
    spec.loader.exec_module(module)
    return getattr(module, name)


def make_step(
    model, optimizer, batch: List[Dict], amp: bool, loss_fn: Optional[Callable] = None
) -> Callable[[int], None]:
    """One ``SimpleTrainer``-style training step at a given storage iteration.

    ``loss_fn`` replaces the criterion's ``pixel_anchor_loss`` during this step only.
    """
    from detectron2.utils.events import get_event_storage

    import contextrast.modeling.contrast.criterion as criterion_module

    device_type = batch[0]["image"].device.type
    scaler = torch.amp.GradScaler(device_type) if amp else None

    def step(iteration: int) -> None:
        get_event_storage().iter = iteration
        current = criterion_module.pixel_anchor_loss
        if loss_fn is not None:
            criterion_module.pixel_anchor_loss = loss_fn
        try:
            with torch.autocast(device_type=device_type, enabled=amp):
                losses = model(batch)
        finally:
            criterion_module.pixel_anchor_loss = current
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            total.backward()
            optimizer.step()
        else:
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()

    return step


def timed(step: Callable[[int], None], iteration: int, cuda: bool) -> float:
    """Milliseconds of one step (CUDA events on the GPU)."""
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step(iteration)
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    step(iteration)
    return (time.perf_counter() - t0) * 1000.0


def profile_steps(step: Callable[[int], None], first_iteration: int, steps: int, cuda: bool) -> str:
    """``torch.profiler`` table (top 25 ops by self time, per-step totals) of a few steps."""
    from detectron2.utils.events import EventStorage
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with EventStorage(first_iteration), profile(activities=activities) as prof:
        for i in range(steps):
            step(first_iteration + i)
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return f"{steps} steps:\n" + prof.key_averages().table(sort_by=key, row_limit=25)


def count_host_syncs(step: Callable[[int], None], iteration: int) -> int:
    """Host synchronisations CUDA's sync debug mode reports during one step.

    ``iteration`` is moved off the criterion's statistics period (one deliberate read-back every
    20 iterations); the GradScaler's own inf check (AMP) is part of every variant alike.
    """
    import warnings

    if iteration % 20 == 0:
        iteration += 1
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step(iteration)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    # Only the per-operation warnings; setting the mode also warns once ("prototype feature").
    return sum("synchronizing CUDA operation" in str(w.message) for w in caught)


def state_bytes(model, optimizer) -> int:
    """Parameters + buffers + optimizer state of one model."""
    n = sum(p.numel() * p.element_size() for p in model.parameters())
    n += sum(b.numel() * b.element_size() for b in model.buffers())
    for s in optimizer.state.values():
        n += sum(v.numel() * v.element_size() for v in s.values() if torch.is_tensor(v))
    return n


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(args) -> None:
    """CPU memory of one variant in this (fresh) process; prints one JSON line."""
    from detectron2.utils.events import EventStorage

    preset = PRESETS[args.preset]
    configs = dict(args.configs or {})
    model, opt, cfg = build_variant(
        preset, args.memory_child, args.opts, configs.get(args.memory_child)
    )
    batch = preset_batch(args, preset, cfg)
    step = make_step(model, opt, batch, amp=cfg.SOLVER.AMP.ENABLED)
    before = _rss_bytes()
    with EventStorage(0):
        for i in range(3):
            step(i + 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"peak_delta_bytes": peak - before, "state_bytes": state_bytes(model, opt)}))


def cpu_memory(args, variant: str) -> Dict:
    """Run :func:`memory_child` for one variant in a fresh process."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--preset",
        args.preset,
        "--memory-child",
        variant,
    ]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    if args.size:
        cmd += ["--size"] + [str(s) for s in args.size]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.configs:
        cmd += ["--configs"] + [f"{name}={path}" for name, path in args.configs]
    out = subprocess.run(cmd + list(args.opts), check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def quartiles(values: Sequence[float]) -> Tuple[float, float, float]:
    """(25th percentile, median, 75th percentile)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[1], q[2]


@dataclass
class Measurements:
    """What :func:`measure` records per variant."""

    times_ms: Dict[str, List[float]]  # wall time of each timed round
    cpu_ms: Dict[str, List[float]]  # process CPU time of each timed round
    memory: Dict[str, Dict]  # peak_delta_bytes and state_bytes (CUDA here; CPU: cpu_memory)
    host_syncs: Optional[Dict[str, int]]  # host syncs per step (CUDA with --sync-debug)
    next_iteration: int  # the storage iteration after the last measured step


def build_steps(args, preset: Preset, variants: List[str]):
    """Every variant's model and training step, on one shared batch.

    Returns:
        built: ``{variant: (model, optimizer, cfg)}``; batch: the records; steps:
        ``{variant: step(iteration)}``.
    """
    configs = dict(args.configs or {})
    built = {v: build_variant(preset, v, args.opts, configs.get(v)) for v in variants}
    batch = preset_batch(args, preset, built[variants[0]][2])
    baseline = (
        load_function(args.baseline_loss, "pixel_anchor_loss") if args.baseline_loss else None
    )
    steps = {
        v: make_step(
            m, o, batch, amp=c.SOLVER.AMP.ENABLED,
            loss_fn=baseline if v == "ccl_bane_baseline_loss" else None,
        )
        for v, (m, o, c) in built.items()
    }  # fmt: skip
    return built, batch, steps


def time_rounds(steps: Dict[str, Callable], warmup: int, rounds: int, cuda: bool):
    """Warm-up steps of every variant (allocator, cudnn autotuning, lazy init), then ``rounds``
    interleaved rounds of one timed step per variant, in rotating order.

    Returns:
        (wall ms per round, process CPU ms per round, last storage iteration used).
    """
    variants = list(steps)
    times: Dict[str, List[float]] = {v: [] for v in variants}
    cpu_times: Dict[str, List[float]] = {v: [] for v in variants}
    it = 0
    for v in variants:
        for _ in range(warmup):
            it += 1
            steps[v](it)
    if cuda:
        torch.cuda.synchronize()
    for r in range(rounds):
        it += 1  # all variants of a round share the storage iteration
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for v in order:
            c0 = time.process_time()
            times[v].append(timed(steps[v], it, cuda))
            cpu_times[v].append((time.process_time() - c0) * 1000.0)
    return times, cpu_times, it


def cuda_step_memory(steps: Dict[str, Callable], built: Dict, iteration: int) -> Dict[str, Dict]:
    """Peak memory of one step of every variant above what was allocated before it, and the
    model's own state."""
    memory = {}
    for v, step in steps.items():
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step(iteration)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        model, opt, _ = built[v]
        memory[v] = {"peak_delta_bytes": peak - base, "state_bytes": state_bytes(model, opt)}
    return memory


def measure(args, built: Dict, steps: Dict[str, Callable], cuda: bool) -> Measurements:
    """Times, then (CUDA) host syncs and step memory, in one ``EventStorage``."""
    from detectron2.utils.events import EventStorage

    with EventStorage(0):
        times, cpu_times, it = time_rounds(steps, args.warmup, args.rounds, cuda)
        syncs = None
        if cuda and args.sync_debug:
            syncs = {v: count_host_syncs(step, it + 1) for v, step in steps.items()}
        memory = cuda_step_memory(steps, built, it + 1) if cuda else {}
    return Measurements(times, cpu_times, memory, syncs, it + 1)


def variant_entries(measured: Measurements, cuda: bool, ratio_base: Optional[str]) -> Dict:
    """Per-variant statistics; ratios (``time_ratio``, ``cpu_ratio``, ``memory_ratio``) to the
    variant ``ratio_base`` (None: no ratios)."""
    variants = list(measured.times_ms)
    base_median = quartiles(measured.times_ms[ratio_base])[1] if ratio_base else None
    base_cpu = statistics.median(measured.cpu_ms[ratio_base]) if ratio_base else None
    entries = {}
    for v in variants:
        q1, med, q3 = quartiles(measured.times_ms[v])
        entry = {"median_ms": med, "q1_ms": q1, "q3_ms": q3, "times_ms": measured.times_ms[v]}
        entry["cpu_median_ms"] = statistics.median(measured.cpu_ms[v])
        if base_median:
            entry["time_ratio"] = med / base_median
            if not cuda and base_cpu:
                entry["cpu_ratio"] = entry["cpu_median_ms"] / base_cpu
        entry.update(measured.memory.get(v, {}))
        if measured.host_syncs is not None:
            entry["host_syncs_per_step"] = measured.host_syncs[v]
        entries[v] = entry
    if ratio_base in measured.memory:

        def total(m):
            return m["peak_delta_bytes"] + m["state_bytes"]

        for v, m in measured.memory.items():
            entries[v]["memory_ratio"] = total(m) / total(measured.memory[ratio_base])
    return entries


def run(args) -> Dict:
    """Benchmark all variants; returns the result dict (also written with --json)."""
    preset = PRESETS[args.preset]
    cuda = preset.device == "cuda"
    variants = [name for name, _ in args.configs] if args.configs else list(args.variants)
    if args.baseline_loss:
        variants.append("ccl_bane_baseline_loss")
    # Ratios are to the first recipe of --configs, or to CE only when it is the first variant.
    ratio_base = variants[0] if (args.configs or variants[0] == "ce") else None
    built, batch, steps = build_steps(args, preset, variants)
    measured = measure(args, built, steps, cuda)
    profile = None
    if args.profile:
        profile = profile_steps(steps[args.profile], measured.next_iteration, steps=5, cuda=cuda)
    if not cuda and not args.no_memory:
        recipes = {name for name, _ in args.configs or ()}
        measured.memory = {
            v: cpu_memory(args, v) for v in variants if v in VARIANTS or v in recipes
        }
    return {
        "profile": profile,
        "preset": args.preset,
        "config": preset.config,
        "batch": len(batch),
        "size": list(batch[0]["image"].shape[-2:]),
        "device": torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores)",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "opts": list(args.opts),
        "baseline_loss": args.baseline_loss,
        "configs": dict(args.configs) if args.configs else None,
        "ratio_base": ratio_base,
        "loadavg_1m": os.getloadavg()[0],
        "variants": variant_entries(measured, cuda, ratio_base),
    }


def format_table(result: Dict) -> str:
    """Plain-text table of a result dict."""
    configs = result.get("configs")
    what = ", ".join(f"{k}={v}" for k, v in configs.items()) if configs else result["config"]
    lines = [
        f"{result['preset']}: {what}, batch {result['batch']}, {result['size'][0]}x"
        f"{result['size'][1]}, {result['device']}, {result['threads']} threads, "
        f"{result['rounds']} interleaved rounds after {result['warmup']} warm-up steps",
        f"ratios to: {LABELS.get(result['ratio_base'], result['ratio_base'])}",
        f"{'variant':<29} {'median ms':>10} {'IQR ms':>15} {'x':>6} {'CPU ms':>8} {'x':>6} "
        f"{'peak step MiB':>14} {'state MiB':>10} {'mem x':>9}",
    ]
    for v, e in result["variants"].items():
        iqr = f"{e['q1_ms']:.0f}-{e['q3_ms']:.0f}"
        ratio = f"{e['time_ratio']:.3f}" if "time_ratio" in e else "-"
        peak = f"{e['peak_delta_bytes'] / 2**20:.0f}" if "peak_delta_bytes" in e else "-"
        state = f"{e['state_bytes'] / 2**20:.1f}" if "state_bytes" in e else "-"
        mem = f"{e['memory_ratio']:.3f}" if "memory_ratio" in e else "-"
        cpu_ratio = f"{e['cpu_ratio']:.3f}" if "cpu_ratio" in e else "-"
        lines.append(
            f"{LABELS.get(v, v):<29} {e['median_ms']:>10.1f} {iqr:>15} {ratio:>6} "
            f"{e['cpu_median_ms']:>8.1f} {cpu_ratio:>6} {peak:>14} {state:>10} {mem:>9}"
            + (f" {e['host_syncs_per_step']:>3} host syncs" if "host_syncs_per_step" in e else "")
        )
    return "\n".join(lines)


def recipe_arg(text: str) -> Tuple[str, str]:
    """``NAME=CONFIG`` of ``--configs``: the config file must exist."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=CONFIG")
    if not os.path.isfile(os.path.join(ROOT, path)):
        raise argparse.ArgumentTypeError(f"{text!r}: no config file {path}")
    return name, path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--warmup", type=int, default=3, help="warm-up steps per variant")
    parser.add_argument("--rounds", type=int, default=20, help="timed steps per variant")
    parser.add_argument(
        "--configs",
        nargs="+",
        type=recipe_arg,
        metavar="NAME=CONFIG",
        help="time these recipes (config files) against each other instead of --variants",
    )
    parser.add_argument("--batch", type=int, help="override the preset's batch size")
    parser.add_argument("--size", type=int, nargs=2, help="override the preset's input H W")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    parser.add_argument(
        "--baseline-loss",
        help="another loss.py: adds a CE + CCL + BANE variant whose criterion uses its "
        "pixel_anchor_loss (before/after comparisons in the same interleaved rounds)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the CPU memory processes")
    parser.add_argument(
        "--sync-debug",
        action="store_true",
        help="CUDA: count host syncs in one extra step per variant",
    )
    parser.add_argument(
        "--profile",
        choices=list(LABELS),
        help="after timing, print a torch.profiler table of 5 steps of this variant",
    )
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides (all variants)")
    args = parser.parse_args(argv)
    if args.opts[:1] == ["--"]:  # overrides after --configs NAME=CONFIG ... --
        args.opts = args.opts[1:]
    return args


def main(argv=None) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args)
        return 0
    result = run(args)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if result["profile"]:
        print(result["profile"])
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
