"""Every MODEL.CONTEXTRAST value is checked where the config is loaded (contextrast.config_checks),
Contextrast enabled or not; settings under which the contrastive term is a no-op are warned
about; IN_FEATURES must follow the backbone's stage order, not just its strides."""

import logging
import os

import pytest
from detectron2.modeling import build_model
from helpers import DEMO_CONFIG, SMALL_HEADS_OPTS, demo_cfg

from contextrast.config import get_contextrast_cfg, load_config
from contextrast.config_checks import _rules, contextrast_values

C = "MODEL.CONTEXTRAST."


def test_every_key_has_a_rule():
    assert set(_rules()) == set(contextrast_values(get_contextrast_cfg()))


@pytest.mark.parametrize(
    "key, value, expected",
    [("FEATURE_GRAD_SCALE", "0", 0.0), ("GRAD_RATIO_CAP", "1", 1.0), ("TEMPERATURE", "1", 1.0)],
)
def test_float_keys_take_integers_on_the_command_line(key, value, expected):
    cfg = demo_cfg(C + key, value)
    assert cfg.MODEL.CONTEXTRAST.get(key) == expected
    assert isinstance(cfg.MODEL.CONTEXTRAST.get(key), float)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("FEATURE_GRAD_SCALE", "-1", "FEATURE_GRAD_SCALE = -1.0: expected a finite number >= 0"),
        ("GRAD_RATIO_CAP", "nan", "GRAD_RATIO_CAP = nan: expected a finite number >= 0"),
        ("GRAD_RATIO_CAP", "-0.1", "GRAD_RATIO_CAP = -0.1: expected a finite number >= 0"),
        ("TEMPERATURE", "inf", "TEMPERATURE = inf: expected a finite number > 0"),
        ("START_ITER", "-1", "START_ITER = -1: expected an integer >= 0"),
        ("FEATURE_SOURCE", "foo", "FEATURE_SOURCE = 'foo': expected one of"),
        ("BANE.TOP_K_RATIO", "0", r"BANE.TOP_K_RATIO = 0.0: expected a value in \(0, 1\]"),
    ],
)
@pytest.mark.parametrize("enabled", ["True", "False"])
def test_bad_values_are_refused_at_load_enabled_or_not(key, value, message, enabled):
    with pytest.raises(ValueError, match=C + message):
        load_config(DEMO_CONFIG, [C + "ENABLED", enabled, C + key, value])


def test_an_integer_for_a_float_key_in_a_file_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "int.yaml"
    path.write_text(f'_BASE_: "{DEMO_CONFIG}"\nMODEL:\n  CONTEXTRAST:\n    FEATURE_GRAD_SCALE: 0\n')
    with pytest.raises(ValueError) as info:
        load_config(str(path))
    message = str(info.value)
    assert f"{C}FEATURE_GRAD_SCALE = 0 in the config file {path}" in message and "0.0" in message


@pytest.mark.parametrize(
    "opts, warning",
    [
        ([C + "START_ITER", "100", "SOLVER.MAX_ITER", "2"],
         "START_ITER = 100 >= SOLVER.MAX_ITER = 2: the contrastive gradient never reaches"),
        ([C + "START_ITER", "2", "SOLVER.MAX_ITER", "2"], "START_ITER = 2 >= SOLVER.MAX_ITER = 2"),
        ([C + "LAYER_WEIGHTS", "[0.0, 0.0, 0.0, 0.0]"], "loss_contrast is 0 at every iteration"),
        ([C + "LOSS_WEIGHT", "0"], "loss_contrast is 0 at every iteration"),
        ([C + "FEATURE_GRAD_SCALE", "0.0", C + "GRAD_RATIO_CAP", "0.5"],
         "GRAD_RATIO_CAP = 0.5 has no effect: FEATURE_GRAD_SCALE = 0"),
    ],
)  # fmt: skip
def test_no_op_settings_are_warned_about(opts, warning, caplog):
    with caplog.at_level(logging.WARNING, logger="contextrast.config"):
        load_config(DEMO_CONFIG, opts)
    assert warning in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="contextrast.config"):
        load_config(DEMO_CONFIG, opts + [C + "ENABLED", "False"])  # a baseline: nothing to say
        load_config(DEMO_CONFIG, [C + "START_ITER", "1", "SOLVER.MAX_ITER", "2"])
    assert caplog.text == ""


@pytest.mark.parametrize(
    "dilations, in_features",
    [
        # The demo backbone: res4 and res5 both have stride 16.
        ([], "['res2', 'res3', 'res5', 'res4']"),
        # As the D-R101 configs: res3, res4 and res5 all have stride 8.
        (["MODEL.RESNETS.RES4_DILATION", "2", "MODEL.RESNETS.RES5_DILATION", "4"],
         "['res2', 'res4', 'res3', 'res5']"),
    ],
)  # fmt: skip
def test_in_features_follow_the_backbone_stage_order(dilations, in_features):
    cfg = demo_cfg(*SMALL_HEADS_OPTS, *dilations, C + "IN_FEATURES", in_features)
    with pytest.raises(ValueError) as info:
        build_model(cfg)
    message = str(info.value)
    assert f"{C}IN_FEATURES = {in_features}" in message and "shallowest first" in message
    assert "['res2', 'res3', 'res4', 'res5']" in message  # the backbone's order
    cfg = demo_cfg(*SMALL_HEADS_OPTS, *dilations)  # the same stages in the stage order build
    assert list(build_model(cfg).contrast_heads) == ["res2", "res3", "res4", "res5"]


def test_stage_order_does_not_follow_the_order_of_out_features():
    """detectron2's ResNet lists its outputs in the order of RESNETS.OUT_FEATURES."""
    reversed_outputs = ["MODEL.RESNETS.OUT_FEATURES", "['res5', 'res4', 'res3', 'res2']"]
    cfg = demo_cfg(*SMALL_HEADS_OPTS, *reversed_outputs)
    assert list(build_model(cfg).contrast_heads) == ["res2", "res3", "res4", "res5"]
    with pytest.raises(ValueError, match="shallowest first"):
        build_model(demo_cfg(*SMALL_HEADS_OPTS, *reversed_outputs, C + "IN_FEATURES",
                             "['res5', 'res4', 'res3', 'res2']"))  # fmt: skip


def test_every_config_passes_the_checks_without_warnings(caplog):
    configs = os.path.join(os.path.dirname(DEMO_CONFIG), "..")
    names = [
        os.path.join(root, f)
        for root, _, files in os.walk(configs)
        for f in files
        if f.endswith(".yaml") and not f.startswith("Base-")
    ]
    assert len(names) > 10
    with caplog.at_level(logging.WARNING, logger="contextrast.config"):
        for name in names:
            load_config(name, freeze=False)
    assert caplog.text == ""
