"""Bad input caught early with clear errors: config keys, Contextrast values, empty splits."""

import os

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from helpers import DEMO_CONFIG, TINY_OPTS, demo_cfg, run, tail, train_net_cmd

from contextrast.config import (
    UnknownConfigKeyError,
    get_contextrast_cfg,
    load_config,
    merge_config,
)
from contextrast.engine import ContextrastTrainer


# ---- unknown config keys --------------------------------------------------------------------
def _yaml(tmp_path, body: str) -> str:
    path = os.path.join(str(tmp_path), "typo.yaml")
    with open(path, "w") as f:
        f.write(f'_BASE_: "{DEMO_CONFIG}"\n{body}')
    return path


@pytest.mark.parametrize(
    "body, wrong, right",
    [
        ("MODEL:\n  CONTEXTRAST:\n    TEMPERATUR: 0.2\n", "MODEL.CONTEXTRAST.TEMPERATUR",
         "MODEL.CONTEXTRAST.TEMPERATURE"),
        ("MODEL:\n  CONTEXTRAST:\n    BANE:\n      TOP_K: 0.3\n", "MODEL.CONTEXTRAST.BANE.TOP_K",
         "MODEL.CONTEXTRAST.BANE.TOP_K_RATIO"),
        ("SOLVER:\n  MAXITER: 10\n", "SOLVER.MAXITER", "SOLVER.MAX_ITER"),
    ],
)  # fmt: skip
def test_misspelled_key_in_yaml_suggests_closest(tmp_path, body, wrong, right):
    path = _yaml(tmp_path, body)
    with pytest.raises(UnknownConfigKeyError) as info:
        merge_config(get_contextrast_cfg(), path)
    msg = str(info.value)
    assert wrong in msg and path in msg and f"Did you mean {right}?" in msg


@pytest.mark.parametrize(
    "key, right",
    [
        ("MODEL.CONTEXTRAST.LAYER_WEIGHT", "MODEL.CONTEXTRAST.LAYER_WEIGHTS"),
        ("SOLVER.TEMPERATURE", "MODEL.CONTEXTRAST.TEMPERATURE"),  # right name, wrong node
        ("MODEL.CONTRAST.PROJ_DIM", "MODEL.CONTEXTRAST.PROJ_DIM"),  # misspelled node
    ],
)
def test_misspelled_key_on_command_line_suggests_closest(key, right):
    with pytest.raises(UnknownConfigKeyError) as info:
        merge_config(get_contextrast_cfg(), DEMO_CONFIG, [key, "1"])
    msg = str(info.value)
    assert "command line" in msg and f"Did you mean {right}?" in msg


def test_unrelated_key_has_no_suggestion():
    with pytest.raises(UnknownConfigKeyError) as info:
        merge_config(get_contextrast_cfg(), DEMO_CONFIG, ["FOO.BAR", "1"])
    assert "Unknown config key FOO.BAR" in str(info.value) and "Did you mean" not in str(info.value)


def test_train_net_reports_misspelled_key(tmp_path):
    """The real entry point fails before training, with the suggestion on stderr."""
    log = os.path.join(str(tmp_path), "stdout.txt")
    cmd = train_net_cmd(str(tmp_path), TINY_OPTS + ["MODEL.CONTEXTRAST.TEMPERATUR", "0.2"])
    assert run(cmd, log, timeout=300).returncode != 0
    text = tail(log, 5)
    assert "UnknownConfigKeyError" in text and "Did you mean MODEL.CONTEXTRAST.TEMPERATURE?" in text
    assert not os.path.exists(os.path.join(str(tmp_path), "metrics.json"))


# ---- invalid Contextrast values: caught where the config is loaded, or at model build ---------
@pytest.mark.parametrize(
    "opts, key",
    [
        (["MODEL.CONTEXTRAST.IN_FEATURES", "['res2', 'res3', 'res4', 'res6']"], "res6"),
        (["MODEL.CONTEXTRAST.IN_FEATURES", "['res5', 'res2']",
          "MODEL.CONTEXTRAST.LAYER_WEIGHTS", "[0.1, 1.0]"], "shallowest first"),
    ],
)  # fmt: skip
def test_contextrast_features_the_network_lacks_fail_model_build(opts, key):
    cfg = demo_cfg(*TINY_OPTS, *opts)
    with pytest.raises(ValueError, match=key.replace("[", r"\[")):
        ContextrastTrainer.build_model(cfg)


@pytest.mark.parametrize(
    "opts, key",
    [
        (["MODEL.CONTEXTRAST.IN_FEATURES", "['res2', 'res5', 'res5']",
          "MODEL.CONTEXTRAST.LAYER_WEIGHTS", "[0.1, 0.4, 1.0]"], "distinct"),
        (["MODEL.CONTEXTRAST.IN_FEATURES", "[]", "MODEL.CONTEXTRAST.LAYER_WEIGHTS", "[]"],
         "IN_FEATURES"),
        (["MODEL.CONTEXTRAST.BANE.TOP_K_RATIO", "0.0"], "BANE.TOP_K_RATIO"),
        (["MODEL.CONTEXTRAST.BANE.TOP_K_RATIO", "1.5"], "BANE.TOP_K_RATIO"),
        (["MODEL.CONTEXTRAST.BANE.TOP_K_RATIO", "-0.5"], "BANE.TOP_K_RATIO"),
        (["MODEL.CONTEXTRAST.BANE.ERROR_MAP", "'tp'"], "BANE.ERROR_MAP"),
        (["MODEL.CONTEXTRAST.TEMPERATURE", "-0.1"], "TEMPERATURE"),
        (["MODEL.CONTEXTRAST.TEMPERATURE", "0.0"], "TEMPERATURE"),
        (["MODEL.CONTEXTRAST.LAYER_WEIGHTS", "[0.5, 1.0]"], "LAYER_WEIGHTS"),
        (["MODEL.CONTEXTRAST.LAYER_WEIGHTS", "[0.1, 0.4, -0.7, 1.0]"], "LAYER_WEIGHTS"),
        (["MODEL.CONTEXTRAST.LOSS_WEIGHT", "-1.0"], "LOSS_WEIGHT"),
        (["MODEL.CONTEXTRAST.ANCHOR_WEIGHT_LOW", "-0.5"], "ANCHOR_WEIGHT_LOW"),
        (["MODEL.CONTEXTRAST.ANCHOR_WEIGHT_LOW", "0.0",
          "MODEL.CONTEXTRAST.ANCHOR_WEIGHT_HIGH", "0.0"], "ANCHOR_WEIGHT_LOW"),
        (["MODEL.CONTEXTRAST.MAX_POSITIVES", "0"], "MAX_POSITIVES"),
        (["MODEL.CONTEXTRAST.MIN_NEGATIVES", "64", "MODEL.CONTEXTRAST.MAX_NEGATIVES", "32"],
         "MIN_NEGATIVES"),
        (["MODEL.CONTEXTRAST.WARMUP_ITERS", "-1"], "WARMUP_ITERS"),
        (["MODEL.CONTEXTRAST.PROJ_DIM", "0"], "PROJ_DIM"),
    ],
)  # fmt: skip
def test_invalid_contextrast_value_fails_at_load(opts, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.").replace("[", r"\[")):
        demo_cfg(*TINY_OPTS, *opts)


def test_yaml_nan_weight_is_rejected(tmp_path):
    """NaN compares False with everything: YAML spells it .nan, the command line nan."""
    path = _yaml(tmp_path, "MODEL:\n  CONTEXTRAST:\n    LOSS_WEIGHT: .nan\n")
    with pytest.raises(ValueError, match="LOSS_WEIGHT = nan: expected a finite number >= 0"):
        load_config(path, TINY_OPTS)
    with pytest.raises(ValueError, match="LOSS_WEIGHT = nan: expected a finite number >= 0"):
        demo_cfg("MODEL.CONTEXTRAST.LOSS_WEIGHT", "nan")


@pytest.mark.parametrize(
    "opts, message",
    [
        # caught where the config is loaded
        (["MODEL.CONTEXTRAST.START_ITER", "-1"],
         "MODEL.CONTEXTRAST.START_ITER = -1: expected an integer >= 0"),
        # caught only by building the model (the backbone knows its stage order): the dry build
        (["MODEL.CONTEXTRAST.IN_FEATURES", "['res5', 'res2']",
          "MODEL.CONTEXTRAST.LAYER_WEIGHTS", "[0.1, 1.0]"],
         "MODEL.CONTEXTRAST.IN_FEATURES = ['res5', 'res2']: list them shallowest first"),
    ],
)  # fmt: skip
def test_bad_value_on_resume_leaves_the_run_folder_alone(tmp_path, opts, message):
    """A bad override fails before train_net writes config.yaml or log.txt into the run folder it
    would resume."""
    out = tmp_path / "run"
    out.mkdir()
    before = {"config.yaml": "the config the run trained with\n", "log.txt": "its log\n"}
    for name, text in before.items():
        (out / name).write_text(text)
    log = str(tmp_path / "stdout.txt")
    cmd = train_net_cmd(str(out), TINY_OPTS + opts, resume=True)
    assert run(cmd, log, timeout=300).returncode != 0
    assert message in tail(log, 5)
    assert {p.name: p.read_text() for p in out.iterdir()} == before


def test_no_op_warning_reaches_the_runs_log(tmp_path):
    """load_config warns before the run's log file exists; train_net's log.txt keeps the warning."""
    out = tmp_path / "run"
    opts = TINY_OPTS + ["MODEL.CONTEXTRAST.START_ITER", "100", "SOLVER.MAX_ITER", "1",
                        "DATASETS.TEST", "()"]  # fmt: skip
    log = str(tmp_path / "stdout.txt")
    assert run(train_net_cmd(str(out), opts), log, timeout=300).returncode == 0
    assert "START_ITER = 100 >= SOLVER.MAX_ITER = 1" in (out / "log.txt").read_text()


def test_unknown_projection_head_names_registry():
    with pytest.raises(KeyError, match="CONTRAST_HEADS"):
        ContextrastTrainer.build_model(
            demo_cfg(*TINY_OPTS, "MODEL.CONTEXTRAST.PROJ_HEAD_NAME", "'MLPHead'")
        )


# ---- empty training split -------------------------------------------------------------------
@pytest.fixture
def empty_split():
    name = "engine_test_empty_train"
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [])
        meta = MetadataCatalog.get("synth_streets_train").as_dict()
        MetadataCatalog.get(name).set(**{k: v for k, v in meta.items() if k != "name"})
    return name


def test_empty_training_split_fails_naming_it(empty_split):
    cfg = demo_cfg(*TINY_OPTS, "DATASETS.TRAIN", f"('{empty_split}',)")
    with pytest.raises((AssertionError, ValueError), match=empty_split):
        ContextrastTrainer.build_train_loader(cfg)


def test_no_training_split_fails():
    with pytest.raises(ValueError, match="DATASETS.TRAIN is empty"):
        ContextrastTrainer.build_train_loader(demo_cfg(*TINY_OPTS, "DATASETS.TRAIN", "()"))


# ---- a device the machine lacks -------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a CUDA GPU")
def test_cuda_device_without_gpu_names_the_key(tmp_path):
    """detectron2's default MODEL.DEVICE is cuda: on a CPU machine train_net says what to set."""
    log = str(tmp_path / "log.txt")
    cmd = train_net_cmd(str(tmp_path / "out"), list(TINY_OPTS) + ["MODEL.DEVICE", "cuda"])
    assert run(cmd, log, timeout=300).returncode != 0
    text = tail(log, 5)
    assert "MODEL.DEVICE is 'cuda'" in text and "MODEL.DEVICE cpu" in text
