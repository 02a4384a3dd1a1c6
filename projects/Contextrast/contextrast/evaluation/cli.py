"""Command line of the tools that compare trained models (``tools/feature_metrics.py``,
``tools/visualize.py``): one config, checkpoint and name per model, a dataset, and ``KEY VALUE``
overrides applied to every config."""

import argparse
import os
from typing import Optional, Sequence

__all__ = ["model_comparison_parser", "parse_model_comparison_args"]


def model_comparison_parser(
    description: str, *, config_help: str, names_help: str, dataset_help: str
) -> argparse.ArgumentParser:
    """A parser with ``--config-file``, ``--weights``, ``--names`` and ``--dataset``; the tool
    adds its own options, then parses with :func:`parse_model_comparison_args`.

    Args:
        description: the tool's one-line description.
        config_help, names_help, dataset_help: help of ``--config-file``, ``--names`` and
            ``--dataset`` (what a model's name labels, whose ``DATASETS.TEST[0]`` is the default).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--config-file", nargs="+", action="extend", required=True, help=config_help
    )
    parser.add_argument(
        "--weights",
        nargs="+",
        action="extend",
        default=[],
        help="one checkpoint per config; default: each config's MODEL.WEIGHTS",
    )
    parser.add_argument("--names", nargs="+", action="extend", default=[], help=names_help)
    parser.add_argument("--dataset", default="", help=dataset_help)
    return parser


def parse_model_comparison_args(
    parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None
) -> argparse.Namespace:
    """Add the trailing ``KEY VALUE`` overrides (``opts``), parse and complete the per-model lists.

    Args:
        parser: from :func:`model_comparison_parser`, with the tool's own options added.
        argv: the arguments; None = ``sys.argv[1:]``.

    Returns:
        The parsed arguments; ``weights`` and ``names`` hold one entry per config: ``None``
        (the config's ``MODEL.WEIGHTS``) and the config file's name where not given.
    """
    # Last: REMAINDER takes everything after the first positional argument.
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        default=[],
        help="KEY VALUE config overrides applied to every config",
    )
    args = parser.parse_args(argv)
    n = len(args.config_file)
    for key in ("weights", "names"):
        given = getattr(args, key)
        if given and len(given) != n:
            parser.error(f"--{key}: give one per config ({n}), got {len(given)}")
    args.weights = args.weights or [None] * n
    args.names = args.names or [os.path.splitext(os.path.basename(c))[0] for c in args.config_file]
    return args
