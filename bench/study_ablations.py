#!/usr/bin/env python
"""Paired ablation table of a CamVid study: variants of one setting against its default.

A variant is a study trained with ``camvid_study.py --tag <name> KEY VALUE`` (usually with
``--ce-from`` the main study, so that CE only is shared); its runs live in ``<base>_<name>/``
next to the main study's ``<base>/``. Every variant run is compared, seed by seed, with the run of
the same setting and seed in the main study and with CE only.

Runs are read either from a study's output folder (``<folder>/<setting>_seed<N>/result.json``) or
from the copies committed under ``docs/results/`` (``<folder>/<setting>_seed<N>.json``), so the
table can be rebuilt on a fresh clone without training:

    python bench/study_ablations.py --base docs/results/camvid_lite0_study_runs/lite0 \\
        --variants normmix fn k025 raster --output docs/results/camvid_lite0_ablations.md
"""

import argparse
import json
import logging
import os
import sys
from typing import Dict, List, Optional, Sequence

from study_report import emit_markdown, mean_std

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# Thin structures, below 10 IoU for CE only in the CamVid studies: reported separately.
THIN_CLASSES = ("Pole", "SignSymbol", "Bicyclist")
logger = logging.getLogger("contextrast.bench.study_ablations")


def load_run(folder: str, setting: str, seed: int) -> Optional[Dict]:
    """result.json of one run, from an output folder or a committed copy; None when absent."""
    for path in (
        os.path.join(folder, f"{setting}_seed{seed}", "result.json"),
        os.path.join(folder, f"{setting}_seed{seed}.json"),
    ):
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                return json.load(f)
    return None


def _run_opts(run: Dict) -> List[str]:
    """A run's config overrides without the per-run ones (SEED, OUTPUT_DIR)."""
    opts, out = list(run["opts"]), []
    for key, value in zip(opts[::2], opts[1::2]):
        if key not in ("SEED", "OUTPUT_DIR"):
            out += [key, value]
    return out


def _config_diff(run: Dict, default: Dict) -> List[str]:
    """``KEY VALUE`` pairs where the run's effective config differs from the default run's."""
    from contextrast.config import load_config

    def flat(run):
        cfg = load_config(os.path.join(ROOT, run["config"]), _run_opts(run), freeze=False)
        out, stack = {}, [("", cfg)]
        while stack:
            prefix, node = stack.pop()
            for k, v in node.items():
                if isinstance(v, dict):
                    stack.append((f"{prefix}{k}.", v))
                else:
                    out[prefix + k] = v
        return out

    a, b = flat(run), flat(default)
    return [x for k in sorted(a) if a[k] != b.get(k) for x in (k, str(a[k]))]


def extra_overrides(run: Dict, default: Dict) -> List[str]:
    """The ``KEY VALUE`` pairs a variant run added after the default run's overrides; when the two
    runs name different config files (a recipe moved into YAML), the keys whose effective values
    differ."""
    if run.get("config") and default.get("config") and run["config"] != default["config"]:
        return _config_diff(run, default)
    base, opts = list(default["opts"]), list(run["opts"])
    if opts[: len(base)] != base:
        raise ValueError(
            f"variant run {run['command']!r} does not extend the default run's overrides {base}; "
            "it is not a paired ablation of that study"
        )
    return opts[len(base) :]


def _paired(values: Dict[int, float], base: Dict[int, float]) -> str:
    deltas = [values[s] - base[s] for s in sorted(values) if s in base]
    if not deltas:
        return "-"
    m, sd = mean_std(deltas)
    return f"{m:+.2f} +- {sd:.2f} ({sum(d > 0 for d in deltas)}/{len(deltas)})"


def _unpaired(values: Dict[int, float], base: Dict[int, float]) -> str:
    """Difference of the means +- its standard error (every seed of each side, unpaired)."""
    if not values or not base:
        return "-"
    (m, sd), (mb, sdb) = mean_std(values.values()), mean_std(base.values())
    se = (sd**2 / len(values) + sdb**2 / len(base)) ** 0.5
    return f"{m - mb:+.2f} +- {se:.2f}"


def _row(
    name: str, override: str, runs: Dict[int, Dict], ce: Dict, default: Dict, balance: str
) -> str:
    miou = {s: r["mIoU"] for s, r in runs.items()}
    m, sd = mean_std(miou.values())
    thin = []
    for c in THIN_CLASSES:
        tm, _ = mean_std(r["per_class_IoU"][c] for r in runs.values())
        thin.append(f"{tm:.1f}")
    return (
        f"| {name} | {override} | {', '.join(map(str, sorted(runs)))} | {m:.2f} +- {sd:.2f} "
        f"| {_paired(miou, ce)} | {_unpaired(miou, ce)} | {_paired(miou, default)} | {balance} "
        f"| {' / '.join(thin)} |"
    )


def screen_balance(screen: Optional[str], checkpoint: str) -> Dict[str, str]:
    """Screen variant -> "ratio / cosine" of the backbone at ``checkpoint``, from the JSON of
    ``bench/grad_balance_screen.py``; empty without a screen."""
    if not screen:
        return {}
    with open(screen) as f:
        cells = json.load(f)["cells"]
    out = {}
    for cell in cells:
        if cell["weights_name"] == checkpoint:
            row = next(r for r in cell["rows"] if r["group"] == "backbone")
            out[cell["variant"]] = f"{row['ratio']:.3g} / {row['cosine']:+.2f}"
    return out


def ablation_table(
    base: str,
    variants: Sequence[str],
    setting: str,
    seeds: Sequence[int],
    balance: Optional[Dict[str, str]] = None,
) -> List[str]:
    """Markdown lines: CE only, the default setting, then one row per variant with any runs.

    ``balance`` maps "default" and variant names to the text of the gradient-balance column.
    """
    balance = balance or {}

    def load(folder: str, name: str) -> Dict[int, Dict]:
        return {n: r for n in seeds if (r := load_run(folder, name, n)) is not None}

    ce_runs, default_runs = load(base, "ce"), load(base, setting)
    if not default_runs:
        raise FileNotFoundError(f"no {setting} runs of seeds {list(seeds)} under {base}")
    ce = {s: r["mIoU"] for s, r in ce_runs.items()}
    default = {s: r["mIoU"] for s, r in default_runs.items()}
    lines = [
        "| variant | override | seeds | mIoU mean +- std | vs CE only, paired (seeds > 0) "
        "| vs CE only, unpaired | vs default, paired (seeds > 0) "
        f"| backbone gradient ratio / cosine | {' / '.join(THIN_CLASSES)} IoU |",
        "|---|---|---|---|---|---|---|---|---|",
        _row("CE only", "-", ce_runs, {}, {}, "-"),
        _row("default", "-", default_runs, ce, {}, balance.get("default", "-")),
    ]
    any_default = next(iter(default_runs.values()))
    for name in variants:
        runs = load(f"{base}_{name}", setting)
        if not runs:
            logger.info("variant %s: no finished %s run, left out", name, setting)
            continue
        extra = {tuple(extra_overrides(r, any_default)) for r in runs.values()}
        if len(extra) != 1:
            raise ValueError(f"variant {name}: its runs differ in their overrides {sorted(extra)}")
        override = " ".join(f"`{k}={v}`" for k, v in zip(*[iter(extra.pop())] * 2))
        lines.append(_row(name, override, runs, ce, default, balance.get(name, "-")))
    return lines


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the main study's folder")
    parser.add_argument("--variants", nargs="+", required=True, help="tags of the variants")
    parser.add_argument("--setting", default="ccl_bane", help="the setting the variants change")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--screen", help="JSON of bench/grad_balance_screen.py: adds the backbone's gradient ratio"
    )
    parser.add_argument("--screen-checkpoint", default="it200", help="its checkpoint name")
    parser.add_argument(
        "--screen-names",
        nargs="+",
        default=[],
        metavar="VARIANT=SCREEN_VARIANT",
        help="screen variant of each variant (and of 'default'); a name maps to itself",
    )
    parser.add_argument("--output", help="Markdown file to write (default: print only)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[study_ablations] %(message)s")
    command = " ".join(["python", os.path.relpath(__file__, ROOT)] + list(argv or sys.argv[1:]))
    lines = [
        # A section, so that camvid_study.py --notes can put it into the study's report.
        f"## Ablations of `{args.setting}` against the study in `{os.path.basename(args.base)}`",
        "",
        f"Generated by `{command}`.",
        "",
    ]
    screened = screen_balance(args.screen, args.screen_checkpoint)
    names = dict(spec.split("=", 1) for spec in args.screen_names)
    balance = {
        v: screened[names.get(v, v)]
        for v in ["default", *args.variants]
        if names.get(v, v) in screened
    }
    lines += ablation_table(args.base, args.variants, args.setting, args.seeds, balance)
    lines += [
        "",
        f"Each variant changes keys of `{args.setting}`; paired deltas are by seed (mean +- "
        "sample std of the per-seed differences; in brackets the seeds where the variant is "
        "higher); unpaired: difference of the means over every seed of each side +- its "
        "standard error. The gradient column (with `--screen`) is the backbone's ratio of the "
        "contrastive to the CE gradient norm and their cosine, from the screen at "
        f"`{args.screen_checkpoint}`. The last column is the mean IoU of the thin classes over the "
        "variant's seeds.",
    ]
    emit_markdown("\n".join(lines) + "\n", args.output, logger)
    return 0


if __name__ == "__main__":
    sys.exit(main())
