"""Markdown table and PNG plots of a CamVid study (see ``camvid_study.py``).

``write_report(summary, path)`` writes ``path`` (Markdown) plus ``<stem>_miou.png`` (mean mIoU per
setting with a standard-deviation error bar and one dot per seed) and ``<stem>_loss.png`` (training
losses from ``metrics.json``: mean over seeds, min-max band), next to it.
"""

import os
import statistics
import sys
from typing import Dict, List, Optional, Sequence

__all__ = ["write_report", "mean_std", "emit_markdown"]


def portable(path: str) -> str:
    """A path as a reader of the repository can use it: relative to the repository when inside
    it, ``/path/to/<last two parts>`` when another absolute path of the machine that ran it."""
    if not os.path.isabs(path):
        return path
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    if os.path.commonpath([root, path]) == root:
        return os.path.relpath(path, root)
    return "/path/to/" + "/".join(path.rstrip("/").split("/")[-2:])


def emit_markdown(text: str, path: Optional[str], logger) -> None:
    """Write a generated table to ``path`` (when given) and to standard output."""
    if path:
        with open(path, "w") as f:
            f.write(text)
        logger.info("wrote %s", portable(os.path.abspath(path)))
    sys.stdout.write(text)


def mean_std(values: Sequence[float]):
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    if not values:
        return float("nan"), float("nan")
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def _paired_deltas(runs: Dict[str, List[Dict]], setting: str, base: str) -> List[float]:
    """mIoU(setting) - mIoU(base) for every seed both have."""
    base_by_seed = {r["seed"]: r["mIoU"] for r in runs.get(base, [])}
    return [r["mIoU"] - base_by_seed[r["seed"]] for r in runs[setting] if r["seed"] in base_by_seed]


def _plot_miou(summary: Dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, labels = summary["runs"], summary["labels"]
    settings = [s for s in labels if runs.get(s)]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, s in enumerate(settings):
        values = [r["mIoU"] for r in runs[s]]
        m, sd = mean_std(values)
        ax.bar(i, m, yerr=sd, capsize=6, color=f"C{i}", alpha=0.75)
        ax.scatter([i] * len(values), values, color="k", s=14, zorder=3)
    ax.set_xticks(range(len(settings)))
    ax.set_xticklabels([labels[s] for s in settings])
    hi = max(r["mIoU"] for s in settings for r in runs[s])
    ax.set_ylim(0.0, hi * 1.15)  # bars start at 0: differences are not magnified
    ax.set_ylabel("camvid_val mIoU (%)")
    ax.set_title(f"CamVid study ({summary['preset']}): mean +- std, dots = seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _series(curve: Dict, key: str) -> List:
    """A logged training scalar; detectron2 logs a single loss (CE only) only as total_loss."""
    if key == "loss_sem_seg" and all(v is None for v in curve["loss_sem_seg"]):
        if all(v is None for v in curve.get("loss_contrast", [None])):
            return curve["total_loss"]
    return curve[key]


def _plot_loss(summary: Dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs, labels = summary["runs"], summary["labels"]
    keys = [("loss_sem_seg", "loss_sem_seg (CE)"), ("total_loss", "total_loss")]
    fig, axes = plt.subplots(1, len(keys), figsize=(10, 3.8))
    for ax, (key, title) in zip(axes, keys):
        for i, s in enumerate(s for s in labels if runs.get(s)):
            curves = [r["curve"] for r in runs[s] if r["curve"]["iteration"]]
            n = min(len(c["iteration"]) for c in curves)
            it = np.asarray(curves[0]["iteration"][:n]) + 1
            ys = np.asarray(
                [[np.nan if v is None else v for v in _series(c, key)[:n]] for c in curves]
            )
            ax.plot(it, np.nanmean(ys, 0), color=f"C{i}", label=labels[s])
            ax.fill_between(it, np.nanmin(ys, 0), np.nanmax(ys, 0), color=f"C{i}", alpha=0.2)
        ax.set_xlabel("iteration")
        ax.set_title(title + " (median of 20 its; mean over seeds, min-max band)", fontsize=8)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(summary: Dict) -> List[str]:
    runs, labels = summary["runs"], summary["labels"]
    settings = [s for s in labels if runs.get(s)]
    lines = [
        "| setting | runs | mIoU mean +- std | delta vs CE only | delta vs CE + CCL | per seed |",
        "|---|---|---|---|---|---|",
    ]

    def delta(s: str, base: str) -> str:
        deltas = _paired_deltas(runs, s, base) if s != base and runs.get(base) else []
        if not deltas:
            return "-"
        dm, dsd = mean_std(deltas)
        wins = sum(d > 0 for d in deltas)
        return f"{dm:+.2f} +- {dsd:.2f} ({wins}/{len(deltas)} seeds > 0)"

    for s in settings:
        m, sd = mean_std(r["mIoU"] for r in runs[s])
        seeds = ", ".join(f"{r['seed']}: {r['mIoU']:.2f}" for r in runs[s])
        ccl = delta(s, "ccl") if s == "ccl_bane" else "-"
        lines.append(
            f"| {labels[s]} | {len(runs[s])} | {m:.2f} +- {sd:.2f} | {delta(s, 'ce')} | {ccl} "
            f"| {seeds} |"
        )
    lines += [
        "",
        "Deltas are paired by seed (same seed = same initial weights and data order for the "
        "shared parts) and summarised as mean +- sample std of the per-seed differences.",
    ]
    return lines


def _class_table(summary: Dict) -> List[str]:
    runs, labels = summary["runs"], summary["labels"]
    settings = [s for s in labels if runs.get(s)]
    classes = summary.get("classes") or list(runs[settings[0]][0]["per_class_IoU"])
    # Paired per-class change of every other setting against CE only: do thin classes move?
    compared = [s for s in settings if s != "ce"] if "ce" in settings else []
    header = [labels[s] for s in settings] + [f"{labels[s]} - CE only" for s in compared]
    lines = ["| class | " + " | ".join(header) + " |"]
    lines.append("|---" * (len(header) + 1) + "|")
    ce_by_seed = {r["seed"]: r for r in runs.get("ce", [])}
    for c in classes:
        cells = []
        for s in settings:
            m, sd = mean_std(r["per_class_IoU"][c] for r in runs[s])
            cells.append(f"{m:.1f} +- {sd:.1f}")
        for s in compared:
            deltas = [
                r["per_class_IoU"][c] - ce_by_seed[r["seed"]]["per_class_IoU"][c]
                for r in runs[s]
                if r["seed"] in ce_by_seed
            ]
            m, sd = mean_std(deltas)
            cells.append(f"{m:+.1f} +- {sd:.1f}" if deltas else "-")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    unlearnt = [
        c
        for c in classes
        if all(mean_std(r["per_class_IoU"][c] for r in runs[s])[0] < 1.0 for s in settings)
    ]
    if unlearnt:
        lines += ["", f"Below 1% mean IoU in every setting: {', '.join(unlearnt)}."]
    return lines


def _step_time_lines(summary: Dict) -> List[str]:
    """Training-step time per setting and its ratio to CE only, paired by seed."""
    runs, labels = summary["runs"], summary["labels"]
    ce = {r["seed"]: r.get("step_time_s") for r in runs.get("ce", [])}
    lines = []
    for s in (s for s in labels if runs.get(s)):
        times = [r["step_time_s"] for r in runs[s] if r.get("step_time_s")]
        if not times:
            continue
        m, sd = mean_std(times)
        ratios = [
            r["step_time_s"] / ce[r["seed"]]
            for r in runs[s]
            if s != "ce" and r.get("step_time_s") and ce.get(r["seed"])
        ]
        ratio = ""
        if ratios:
            rm, rsd = mean_std(ratios)
            ratio = f"; {rm:.3f}x +- {rsd:.3f} the CE-only step of the same seed"
        lines.append(f"- {labels[s]}: {m:.3f} +- {sd:.3f} s per training step{ratio}.")
    if lines:
        lines.insert(0, "Training step (median of detectron2's `time` after iteration 20):")
    return lines


def write_report(summary: Dict, path: str) -> str:
    """Write the Markdown report and its two plots; returns the mIoU table as text."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    stem = os.path.splitext(path)[0]
    runs = summary["runs"]
    if not any(runs.values()):
        return "no finished runs"
    _plot_miou(summary, stem + "_miou.png")
    _plot_loss(summary, stem + "_loss.png")
    table = _table(summary)
    m = summary["machine"]
    total = sum(r["wall_s"] for rs in runs.values() for r in rs)
    n_runs = sum(len(rs) for rs in runs.values())
    first = next(r for rs in runs.values() for r in rs)
    extra = " ".join(summary["opts"]) or "none"
    lines = [
        f"# CamVid study: CE only vs + CCL vs + CCL + BANE (preset `{summary['preset']}`"
        + (f", tag `{summary['tag']}`" if summary["tag"] else "")
        + ")",
        "",
        "Generated by `bench/camvid_study.py` from the runs' own `metrics.json`; "
        "do not edit by hand.",
        "",
        "```",
        "DETECTRON2_DATASETS="
        + (
            "/path/to/datasets"
            if os.path.isabs(summary["datasets_root"])
            else summary["datasets_root"]
        )
        + " "
        + " ".join(portable(a) for a in summary["command"].split(" ")),
        "```",
        "",
        f"Each run: `{first['command'].split(' --config-file ')[0].split('/')[-1]}` "
        "training on `camvid_train` (367 images), then detectron2's `SemSegEvaluator` on "
        "`camvid_val` (101 images, single scale, predictions resized to 360x480). Configs: "
        + ", ".join(f"`{r[0]['config']}`" for r in runs.values() if r)
        + f"; extra overrides: `{extra}`; seeds {summary['seeds']}; "
        + f"{summary.get('threads') or 'default'} intra-op thread(s) per run. "
        + (
            f"CE-only runs reused from `{portable(summary['ce_from'])}`. "
            if summary.get("ce_from")
            else ""
        )
        + "std = sample standard deviation over seeds.",
        "",
        *table,
        "",
        summary.get("note", ""),
        "",
        summary.get("notes_text", ""),
        "",
        f"![mIoU per setting]({os.path.basename(stem)}_miou.png)",
        f"![training losses]({os.path.basename(stem)}_loss.png)",
        "",
        "## Per-class IoU (%, mean +- std over seeds)",
        "",
        *_class_table(summary),
        "",
        "## Machine and time",
        "",
        f"- {m['platform']}, {m['processor']}, {m['cpu_count']} CPUs visible, torch {m['torch']}, "
        f"GPU: {m['cuda'] or 'none'}; 1-minute load average "
        f"{m['loadavg_1m']:.1f} when the report was written (cores shared with other jobs).",
        f"- {n_runs} runs, {total / 60:.1f} minutes of run wall time in all "
        f"({total / max(n_runs, 1) / 60:.1f} min per run, training + evaluation).",
        "",
        *_step_time_lines(summary),
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return "\n".join(table)
