"""ContextrastCheckpointer in-process: atomic saves and strict loading of MODEL.WEIGHTS."""

import os

import pytest
import torch
from detectron2.modeling import build_model
from helpers import TINY_OPTS, demo_cfg

from contextrast.checkpoint import (
    CheckpointMismatchError,
    ContextrastCheckpointer,
    UnreadableCheckpointError,
)


def _model(*opts, seed=0):
    torch.manual_seed(seed)
    return build_model(demo_cfg(*TINY_OPTS, "MODEL.DEVICE", "cpu", *opts))


def _save(model, folder, name="ckpt", **checkpointables):
    os.makedirs(folder, exist_ok=True)
    ContextrastCheckpointer(model, str(folder), **checkpointables).save(name)
    return os.path.join(str(folder), f"{name}.pth")


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ---- atomic saves ---------------------------------------------------------------------------
def test_save_is_complete_named_and_tagged(tmp_path):
    model = _model()
    path = _save(model, tmp_path, "model_0000009")
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth"]  # no temp
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    saved = torch.load(path, map_location="cpu", weights_only=False)["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(saved[k], v), k


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


class _BrokenState:
    """A checkpointable whose state cannot be serialized: torch.save fails after writing."""

    def state_dict(self):
        return {"weights": torch.randn(1000), "broken": _Unpicklable()}


def test_failed_save_leaves_previous_checkpoint_and_tag(tmp_path):
    model = _model()
    good = _save(model, tmp_path, "model_0000004")
    before = open(good, "rb").read()
    checkpointer = ContextrastCheckpointer(model, str(tmp_path), extra=_BrokenState())
    with pytest.raises(RuntimeError, match="cannot pickle"):
        checkpointer.save("model_0000009")
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000004.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    assert open(good, "rb").read() == before


def test_truncated_checkpoint_error_names_file_and_alternatives(tmp_path):
    model = _model()
    path = _save(model, tmp_path, "model_0000004")
    data = open(path, "rb").read()
    truncated = os.path.join(str(tmp_path), "model_0000009.pth")
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(UnreadableCheckpointError) as info:
        ContextrastCheckpointer(_model(), str(tmp_path)).load(truncated)
    msg = str(info.value)
    assert truncated in msg and "truncated" in msg and "model_0000004.pth" in msg


def test_missing_and_empty_checkpoints_are_named(tmp_path):
    checkpointer = ContextrastCheckpointer(_model(), str(tmp_path))
    missing = str(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match=f"Checkpoint {missing} not found"):
        checkpointer.load(missing)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableCheckpointError, match=f"{empty} \\(the file is empty\\)"):
        checkpointer.load(str(empty))


# ---- strict loading -------------------------------------------------------------------------
def test_other_class_count_lists_every_mismatched_shape(tmp_path):
    source = _model()
    path = _save(source, tmp_path)
    num_classes = demo_cfg(*TINY_OPTS).MODEL.SEM_SEG_HEAD.NUM_CLASSES
    target = _model("MODEL.SEM_SEG_HEAD.NUM_CLASSES", str(num_classes + 3))
    a, b = _shapes(source), _shapes(target)
    differing = [k for k in a if k in b and a[k] != b[k]]
    assert differing  # the classifier
    with pytest.raises(CheckpointMismatchError) as info:
        ContextrastCheckpointer(target).load(path)
    msg = str(info.value)
    assert path in msg and f"{len(differing)} tensors with different shapes" in msg
    for k in differing:
        assert f"{k}: {a[k]} in the checkpoint, {b[k]} in the model" in msg
    assert "MODEL.WEIGHTS_STRICT False" in msg and "missing from the checkpoint" not in msg


def test_other_architecture_lists_shapes_and_missing_keys(tmp_path):
    source = _model()
    path = _save(source, tmp_path)
    cfg = demo_cfg(*TINY_OPTS)
    deeper = {50: 101, 101: 152}[cfg.MODEL.RESNETS.DEPTH]
    target = _model("MODEL.RESNETS.DEPTH", str(deeper))
    # BatchNorm fills in a missing num_batches_tracked counter by itself.
    missing = sorted(set(_shapes(target)) - set(_shapes(source)))
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    assert missing
    with pytest.raises(CheckpointMismatchError) as info:
        ContextrastCheckpointer(target).load(path)
    msg = str(info.value)
    assert f"{len(missing)} model tensors missing from the checkpoint" in msg
    assert missing[0] in msg


def test_lenient_mode_keeps_detectron2_behaviour(tmp_path):
    source = _model()
    path = _save(source, tmp_path)
    num_classes = demo_cfg(*TINY_OPTS).MODEL.SEM_SEG_HEAD.NUM_CLASSES
    target = _model("MODEL.SEM_SEG_HEAD.NUM_CLASSES", str(num_classes + 3), seed=1)
    ContextrastCheckpointer(target, strict=False).load(path)
    backbone = {k: v for k, v in source.state_dict().items() if k.startswith("backbone.")}
    for k, v in backbone.items():
        assert torch.equal(target.state_dict()[k], v), k


def test_backbone_only_checkpoint_loads(tmp_path):
    """The ImageNet-initialisation case: only backbone tensors; heads keep their init."""
    source = _model()
    state = {k: v for k, v in source.state_dict().items() if k.startswith("backbone.")}
    path = os.path.join(str(tmp_path), "imagenet_backbone.pth")
    torch.save({"model": state}, path)
    target = _model(seed=1)
    heads_before = {k: v.clone() for k, v in target.state_dict().items() if k not in state}
    ContextrastCheckpointer(target).load(path)
    loaded = target.state_dict()
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k
    for k, v in heads_before.items():
        assert torch.equal(loaded[k], v), k


def test_backbone_only_checkpoint_of_another_backbone_fails(tmp_path):
    source = _model()
    state = {k: v for k, v in source.state_dict().items() if k.startswith("backbone.")}
    dropped = sorted(state)[len(state) // 2]
    del state[dropped]
    path = os.path.join(str(tmp_path), "partial_backbone.pth")
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointMismatchError, match="1 model tensors missing") as info:
        ContextrastCheckpointer(_model()).load(path)
    assert dropped in str(info.value)


def test_baseline_and_contextrast_checkpoints_load_into_each_other(tmp_path):
    contextrast = _model(seed=0)
    baseline = _model("MODEL.CONTEXTRAST.ENABLED", "False", seed=1)
    heads = [k for k in contextrast.state_dict() if k.startswith("contrast_heads.")]
    assert heads and not any(k in baseline.state_dict() for k in heads)
    # Contextrast checkpoint -> baseline (deployment): the projection heads are not needed.
    ContextrastCheckpointer(baseline).load(_save(contextrast, tmp_path / "c"))
    for k, v in baseline.state_dict().items():
        assert torch.equal(contextrast.state_dict()[k], v), k
    # Baseline checkpoint -> Contextrast (fine-tuning): projection heads keep their init.
    fresh = _model(seed=2)
    init = {k: fresh.state_dict()[k].clone() for k in heads}
    ContextrastCheckpointer(fresh).load(_save(baseline, tmp_path / "b"))
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, init[k] if k in init else baseline.state_dict()[k]), k


def test_ddp_checkpoint_loads_exactly(tmp_path):
    """Keys saved through a DistributedDataParallel wrapper (``module.``) load unchanged."""
    source = _model()
    path = os.path.join(str(tmp_path), "ddp.pth")
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    target = _model(seed=1)
    ContextrastCheckpointer(target, exact=True).load(path)
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k


def test_module_shared_under_two_names_is_not_missing(tmp_path):
    """A tensor the checkpoint holds under one of its names counts as loaded under all."""
    model = torch.nn.Module()
    model.conv = torch.nn.Conv2d(2, 2, 1)
    model.alias = model.conv  # state_dict() lists conv.* and alias.*
    path = os.path.join(str(tmp_path), "shared.pth")
    torch.save({"model": {f"conv.{k}": v for k, v in model.conv.state_dict().items()}}, path)
    ContextrastCheckpointer(model).load(path)
    # ...and as missing under all when the checkpoint holds none of them.
    torch.save({"model": {"conv.bias": model.conv.bias.detach()}}, path)
    with pytest.raises(CheckpointMismatchError, match="2 model tensors missing") as info:
        ContextrastCheckpointer(model).load(path)
    assert "alias.weight" in str(info.value) and "conv.weight" in str(info.value)
