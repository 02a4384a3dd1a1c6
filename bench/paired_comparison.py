#!/usr/bin/env python
"""A study's decision table: settings against CE only, paired by seed, with the 95% interval.

For each compared setting: its seeds, the mean and spread of the final mIoU, the paired
differences to the baseline (CE only) with their mean, standard deviation, 95% t-interval, the
number of seeds above and the exact sign-flip p-value (all 2^n sign assignments of the
differences); then the per-class paired differences (mean +- std over seeds, thin classes first);
the mIoU curve of every run (evaluations during training, ``eval_curve`` of its result.json) as a
PNG; and, with ``--gain-vs-cosine``, the paired gain of every variant measured so far against the
gradient diagnostic's backbone cosine and ratio (a second PNG).

A setting is ``NAME=FOLDER:SETTING`` (runs ``FOLDER/SETTING_seed<N>.json`` or
``FOLDER/SETTING_seed<N>/result.json``), so committed copies rebuild the table on a fresh clone:

    python bench/paired_comparison.py --seeds 0 1 2 3 4 \\
        --baseline "CE only=docs/results/camvid_lite0_study_runs/lite0_long:ce" \\
        --compare "head=docs/results/camvid_lite0_study_runs/lite0_long_head:ccl_bane" \\
                  "paper=docs/results/camvid_lite0_study_runs/lite0_long:ccl_bane" \\
        --output docs/results/camvid_lite0_long_table.md
"""

import argparse
import itertools
import json
import logging
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from study_ablations import load_run
from study_report import emit_markdown, mean_std

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# Thin and small classes first in the per-class table: what the method's claims are about.
THIN_FIRST = ("Pole", "SignSymbol", "Bicyclist", "Pedestrian", "Fence")
logger = logging.getLogger("contextrast.bench.paired_comparison")


def t_interval(deltas: Sequence[float], level: float = 0.95) -> Tuple[float, float]:
    """Two-sided ``level`` t-interval of the mean of ``deltas`` (needs 2 or more)."""
    from scipy import stats

    m, sd = mean_std(deltas)
    half = stats.t.ppf(0.5 + level / 2, len(deltas) - 1) * sd / len(deltas) ** 0.5
    return m - half, m + half


def sign_flip_p(deltas: Sequence[float]) -> float:
    """Exact two-sided p-value of the paired sign-flip (permutation) test of mean 0."""
    observed = abs(sum(deltas))
    flips = list(itertools.product((1, -1), repeat=len(deltas)))
    hits = sum(
        abs(sum(s * d for s, d in zip(signs, deltas))) >= observed - 1e-12 for signs in flips
    )
    return hits / len(flips)


def decision(low: float, high: float, pairs: int, planned: int) -> str:
    """The rule of docs/results/camvid_lite0_long_rule.md, once ``planned`` pairs are in: an
    interval of fewer pairs is reported, but the rule was written for the planned number (with 2
    pairs of nearly equal differences the t-interval is narrow by chance, not by evidence)."""
    if pairs < planned:
        return f"pending: {pairs} of {planned} pairs"
    if low > 0:
        return "better than CE only"
    if high < 0:
        return "worse than CE only"
    return "not separable from CE only"


def load_setting(spec: str, seeds: Sequence[int]) -> Tuple[str, Dict[int, Dict]]:
    """``NAME=FOLDER:SETTING`` -> (name, {seed: result})."""
    name, _, where = spec.partition("=")
    folder, _, setting = where.rpartition(":")
    if not name or not folder or not setting:
        raise ValueError(f"{spec!r}: expected NAME=FOLDER:SETTING")
    folder = folder if os.path.isabs(folder) else os.path.join(ROOT, folder)
    runs = {s: r for s in seeds if (r := load_run(folder, setting, s)) is not None}
    return name, runs


def _fmt(values: Sequence[float], digits: int, sign: bool = False) -> str:
    """``mean +- std``, or the single value alone (one seed has no spread)."""
    values = list(values)
    m, sd = mean_std(values)
    spec = f"{'+' if sign else ''}.{digits}f"
    return f"{m:{spec}}" if len(values) == 1 else f"{m:{spec}} +- {sd:.{digits}f}"


def summary_rows(
    base: Dict[int, Dict], compared: Dict[str, Dict[int, Dict]], planned: int
) -> List[str]:
    """The mIoU table; ``planned``: the number of pairs the rule decides on."""
    lines = [
        "| setting | seeds | mIoU mean +- std | paired difference to CE only, per seed "
        "| mean +- std | 95% t-interval | seeds above | sign-flip p | rule |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines.append(f"| CE only | {', '.join(map(str, sorted(base)))} | "
                 f"{_fmt([r['mIoU'] for r in base.values()], 2)} "
                 "| - | - | - | - | - | - |")  # fmt: skip
    for name, runs in compared.items():
        seeds = [s for s in sorted(runs) if s in base]
        deltas = [runs[s]["mIoU"] - base[s]["mIoU"] for s in seeds]
        per_seed = ", ".join(f"{d:+.2f}" for d in deltas) or "-"
        cells = ["-"] * 5
        if len(deltas) >= 2:
            dm, dsd = mean_std(deltas)
            low, high = t_interval(deltas)
            cells = [f"{dm:+.2f} +- {dsd:.2f}", f"[{low:+.2f}, {high:+.2f}]",
                     f"{sum(d > 0 for d in deltas)}/{len(deltas)}", f"{sign_flip_p(deltas):.3f}",
                     decision(low, high, len(deltas), planned)]  # fmt: skip
        lines.append(
            f"| {name} | {', '.join(map(str, sorted(runs)))} | "
            f"{_fmt([r['mIoU'] for r in runs.values()], 2)} | {per_seed} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def class_rows(base: Dict[int, Dict], compared: Dict[str, Dict[int, Dict]]) -> List[str]:
    classes = list(next(iter(base.values()))["per_class_IoU"])
    ordered = [c for c in THIN_FIRST if c in classes] + [c for c in classes if c not in THIN_FIRST]
    names = list(compared)
    lines = [
        "| class | CE only IoU | "
        + " | ".join(f"{n} IoU | {n} - CE only, paired" for n in names)
        + " |",
        "|---" * (2 + 2 * len(names)) + "|",
    ]
    for c in ordered:
        cells = [_fmt([r["per_class_IoU"][c] for r in base.values()], 1)]
        for n in names:
            runs = compared[n]
            d = [
                runs[s]["per_class_IoU"][c] - base[s]["per_class_IoU"][c] for s in runs if s in base
            ]
            delta = f"{_fmt(d, 1, sign=True)} ({sum(x > 0 for x in d)}/{len(d)})" if d else "-"
            cells += [_fmt([r["per_class_IoU"][c] for r in runs.values()], 1), delta]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines


def machine_rows(runs: Dict[str, Dict[int, Dict]]) -> List[str]:
    """One row per run: the CPU it trained on, its wall time and median step time. A resumed
    run's ``wall_s`` covers only the process that finished it, so its row says so; the median
    step time covers every logged iteration and compares across runs either way."""
    lines = ["| setting | seed | CPU (instruction set) | wall minutes | step s (median) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, by_seed in runs.items():
        for s, r in sorted(by_seed.items()):
            m = r.get("machine") or {}
            cpu = f"{m.get('cpu', '?')} ({m.get('simd', '?')})" if m else "not recorded"
            wall = f"{r['wall_s'] / 60:.0f}" + (
                " (resumed: last part only)" if r.get("resumed") else ""
            )
            step = r.get("step_time_s")
            lines.append(f"| {name} | {s} | {cpu} | {wall} | {f'{step:.2f}' if step else '-'} |")
    return lines


def plot_curves(runs: Dict[str, Dict[int, Dict]], path: str) -> bool:
    """mIoU on val during training, one line per run, one colour per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for i, (name, by_seed) in enumerate(runs.items()):
        for j, (seed, r) in enumerate(sorted(by_seed.items())):
            curve = r.get("eval_curve") or {}
            if curve.get("iteration"):
                ax.plot(curve["iteration"], curve["mIoU"], "o-", color=f"C{i}", alpha=0.7,
                        label=name if j == 0 else None)  # fmt: skip
                drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("iteration")
    ax.set_ylabel("camvid_val mIoU (%)")
    ax.set_title("mIoU during training, one line per seed", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_gain_vs_cosine(points: List[Dict], path: str) -> None:
    """Paired gain over CE only against the backbone's gradient cosine and ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, key, label in ((axes[0], "cosine", "cosine"), (axes[1], "ratio", "ratio (log)")):
        for p in points:
            ax.errorbar(p[key], p["gain"], yerr=p["gain_std"], fmt="o", capsize=4)
            ax.annotate(p["name"], (p[key], p["gain"]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")  # fmt: skip
        ax.axhline(0, color="k", lw=0.7)
        ax.set_xlabel(f"backbone gradient {label}, contrastive vs CE")
        ax.set_ylabel("paired mIoU gain over CE only (mean +- std)")
        if key == "ratio":
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gain_points(specs: Sequence[str], seeds: Sequence[int], baseline: str) -> List[Dict]:
    """One point per ``NAME=FOLDER:SETTING[~BASE_FOLDER:BASE_SETTING]@SCREEN_JSON#CELL`` (CELL:
    ``VARIANT/WEIGHTS_NAME`` of a ``grad_balance_screen.py`` JSON); CE only is ``baseline``
    (``NAME=FOLDER:SETTING``) unless the spec names its own after ``~``."""
    points = []
    for spec in specs:
        runs_spec, _, screen = spec.partition("@")
        runs_spec, _, own_base = runs_spec.partition("~")
        json_path, _, cell = screen.partition("#")
        variant, _, weights_name = cell.partition("/")
        if not json_path or not variant or not weights_name:
            raise ValueError(f"{spec!r}: expected NAME=FOLDER:SETTING@SCREEN_JSON#VARIANT/WEIGHTS")
        name, runs = load_setting(runs_spec, seeds)
        _, base = load_setting(f"ce={own_base}" if own_base else baseline, seeds)
        if not os.path.isabs(json_path):
            json_path = os.path.join(ROOT, json_path)
        with open(json_path) as f:
            cells = json.load(f)["cells"]
        match = [c for c in cells if c["variant"] == variant and c["weights_name"] == weights_name]
        if not match:
            raise ValueError(f"{spec}: no cell {variant}/{weights_name} in {json_path}")
        row = next(r for r in match[0]["rows"] if r["group"] == "backbone")
        d = [runs[s]["mIoU"] - base[s]["mIoU"] for s in runs if s in base]
        if not d:
            raise ValueError(f"{spec}: no seed with both a run and a CE only run")
        m, sd = mean_std(d)
        points.append({"name": name, "gain": m, "gain_std": sd, "pairs": len(d),
                       "cosine": row["cosine"], "ratio": row["ratio"]})  # fmt: skip
    return points


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", required=True, metavar="NAME=FOLDER:SETTING")
    parser.add_argument("--compare", nargs="+", required=True, metavar="NAME=FOLDER:SETTING")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--rule-pairs",
        type=int,
        help="pairs the rule decides on; fewer show 'pending' (default: all --seeds)",
    )
    parser.add_argument(
        "--gain-vs-cosine",
        nargs="+",
        default=[],
        metavar="NAME=FOLDER:SETTING[~BASE_FOLDER:BASE_SETTING]@SCREEN_JSON#VARIANT/WEIGHTS_NAME",
        help="variants for the gain-vs-gradient plot, with the screen cell of each; CE only is "
        "--baseline unless given after ~",
    )
    parser.add_argument("--output", help="Markdown file (default: print only); PNGs beside it")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[paired_comparison] %(message)s")
    _, base = load_setting(args.baseline, args.seeds)
    if not base:
        raise SystemExit(f"no baseline run of seeds {args.seeds}: {args.baseline}")
    compared = dict(load_setting(spec, args.seeds) for spec in args.compare)
    compared = {k: v for k, v in compared.items() if v}
    command = " ".join(["python", os.path.relpath(__file__, ROOT)] + list(argv or sys.argv[1:]))
    lines = [f"Generated by `{command}`.", "", "### Final mIoU, paired by seed", ""]
    lines += summary_rows(base, compared, args.rule_pairs or len(args.seeds))
    lines += ["", "### Per class (IoU at the last evaluation; deltas paired by seed, mean +- std, "
              "seeds above)", ""]  # fmt: skip
    lines += class_rows(base, compared)
    lines += ["", "### Runs and machines", ""]
    lines += machine_rows({"CE only": base, **compared})
    stem = os.path.splitext(args.output)[0] if args.output else None
    if stem:
        os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    if stem and plot_curves({"CE only": base, **compared}, stem + "_curves.png"):
        lines += ["", f"![mIoU during training]({os.path.basename(stem)}_curves.png)"]
    if args.gain_vs_cosine:
        points = gain_points(args.gain_vs_cosine, args.seeds, args.baseline)
        lines += ["", "### Paired gain over CE only vs the gradient diagnostic (backbone)", "",
                  "| variant | pairs | gain mean +- std | backbone cosine | backbone ratio |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for p in sorted(points, key=lambda p: p["cosine"]):
            lines.append(f"| {p['name']} | {p['pairs']} | {p['gain']:+.2f} +- {p['gain_std']:.2f} "
                         f"| {p['cosine']:+.3f} | {p['ratio']:.3g} |")  # fmt: skip
        if stem:
            plot_gain_vs_cosine(points, stem + "_gain_vs_cosine.png")
            lines += ["", f"![gain vs gradient]({os.path.basename(stem)}_gain_vs_cosine.png)"]
    emit_markdown("\n".join(lines) + "\n", args.output, logger)
    return 0


if __name__ == "__main__":
    sys.exit(main())
