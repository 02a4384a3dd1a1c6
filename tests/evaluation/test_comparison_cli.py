"""The command line shared by tools/feature_metrics.py and tools/visualize.py."""

import pytest

from contextrast.evaluation.cli import model_comparison_parser, parse_model_comparison_args


def _parse(argv):
    parser = model_comparison_parser("test", config_help="c", names_help="n", dataset_help="d")
    parser.add_argument("--output", default="")
    return parse_model_comparison_args(parser, argv)


def test_defaults_give_one_entry_per_config():
    args = _parse(["--config-file", "a/base.yaml", "b/ctx.yaml", "--output", "o", "K", "1"])
    assert args.names == ["base", "ctx"] and args.weights == [None, None]
    assert args.output == "o" and args.opts == ["K", "1"] and args.dataset == ""


def test_given_lists_are_kept():
    args = _parse(["--config-file", "a.yaml", "b.yaml", "--weights", "w1", "w2", "--names", "A",
                   "B"])  # fmt: skip
    assert args.weights == ["w1", "w2"] and args.names == ["A", "B"] and args.opts == []


@pytest.mark.parametrize("key", ["--weights", "--names"])
def test_one_entry_per_config_is_required(key, capsys):
    with pytest.raises(SystemExit):
        _parse(["--config-file", "a.yaml", "b.yaml", key, "x"])
    assert f"{key}: give one per config (2), got 1" in capsys.readouterr().err
