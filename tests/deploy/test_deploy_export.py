"""ONNX export of a Contextrast checkpoint: no training-only weights, the baseline's graph,
ONNX Runtime parity at two sizes, and clear errors for checkpoints of another network."""

import os

import numpy as np
import onnx
import pytest
import torch
from helpers import BASELINE_CONFIG, DEMO_CONFIG, FP32_ATOL, FP32_RTOL, assert_close_to_reference
from onnx import numpy_helper

from contextrast.checkpoint import MAX_LISTED_KEYS, TRAINING_ONLY_PREFIX, CheckpointMismatchError
from contextrast.config import load_config
from contextrast.export import (
    InferenceWrapper,
    build_inference_model,
    build_training_model,
    count_parameters,
)
from contextrast.export import export_onnx as export_graph
from contextrast.export import (
    jitter_weights,
    load_inference_weights,
    onnx_graph_summary,
    ort_session,
    random_images,
    read_checkpoint,
    torch_forward,
)
from deploy import export_onnx


def setup_cfg(config, opts=()):
    """The config as the deploy scripts read it."""
    return load_config(config, opts, device="cpu")


def inference_model(config=DEMO_CONFIG, weights=None, opts=()):
    model = build_inference_model(setup_cfg(config, opts))
    if weights:
        load_inference_weights(model, weights)
    return model


def test_checkpoint_holds_projection_heads(demo_checkpoint):
    # Otherwise the stripping tests below would prove nothing.
    state = read_checkpoint(demo_checkpoint)
    heads = [k for k in state if k.startswith(TRAINING_ONLY_PREFIX)]
    model = build_training_model(setup_cfg(DEMO_CONFIG))
    assert len(heads) == len([k for k in model.state_dict() if k.startswith(TRAINING_ONLY_PREFIX)])
    assert heads


def test_loading_drops_exactly_the_projection_heads(demo_checkpoint, caplog):
    model = build_inference_model(setup_cfg(DEMO_CONFIG))
    with caplog.at_level("INFO", logger="contextrast.checkpoint"):
        report = load_inference_weights(model, demo_checkpoint)
    state = read_checkpoint(demo_checkpoint)
    heads = sorted(k for k in state if k.startswith(TRAINING_ONLY_PREFIX))
    assert report["dropped"] == heads
    assert report["loaded"] == len(state) - len(heads) == len(model.state_dict())
    assert f"Dropped {len(heads)} training-only tensors" in caplog.text
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_initializers_hold_no_training_only_weight(
    demo_checkpoint, contextrast_onnx, baseline_onnx
):
    ours, base = onnx_graph_summary(contextrast_onnx), onnx_graph_summary(baseline_onnx)
    assert not [n for n in ours["initializers"] if "contrast" in n]
    # Same tensors (names, dtypes, shapes) as the export of the baseline config.
    assert ours["initializers"] == base["initializers"]
    # And no initializer carries the values of a projection-head tensor.
    heads = [
        v.numpy()
        for k, v in read_checkpoint(demo_checkpoint).items()
        if k.startswith(TRAINING_ONLY_PREFIX) and v.numel() > 1
    ]
    for init in onnx.load(contextrast_onnx).graph.initializer:
        array = numpy_helper.to_array(init)
        for head in heads:
            assert not (array.shape == head.shape and np.allclose(array, head)), init.name


def test_same_weights_give_the_baseline_export(demo_checkpoint, contextrast_onnx, tmp_path):
    # The baseline config loaded with the (stripped) Contextrast checkpoint exports to the same
    # initializers, value for value: the deployed network is the baseline network.
    path = str(tmp_path / "baseline_same_weights.onnx")
    argv = [
        "--config-file",
        BASELINE_CONFIG,
        "--weights",
        demo_checkpoint,
        "--output",
        path,
        "--dynamic",
    ]
    assert export_onnx.main(argv) == 0
    ours = {i.name: numpy_helper.to_array(i) for i in onnx.load(contextrast_onnx).graph.initializer}
    base = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    assert ours.keys() == base.keys()
    for name, array in ours.items():
        assert np.array_equal(array, base[name]), name


def test_graph_and_parameters_equal_the_baseline(demo_checkpoint, contextrast_onnx, baseline_onnx):
    ours, base = onnx_graph_summary(contextrast_onnx), onnx_graph_summary(baseline_onnx)
    assert ours["op_histogram"] == base["op_histogram"]
    assert ours["nodes"] == base["nodes"]
    assert ours["initializer_elements"] == base["initializer_elements"]
    assert ours["inputs"] == base["inputs"]
    assert ours["outputs"] == base["outputs"]
    contextrast = inference_model(DEMO_CONFIG, demo_checkpoint)
    baseline = inference_model(BASELINE_CONFIG)
    assert count_parameters(contextrast) == count_parameters(baseline)
    assert count_parameters(build_training_model(setup_cfg(DEMO_CONFIG))) > count_parameters(
        contextrast
    )


def test_io_contract(contextrast_onnx):
    summary = onnx_graph_summary(contextrast_onnx)
    num_classes = setup_cfg(DEMO_CONFIG).MODEL.SEM_SEG_HEAD.NUM_CLASSES
    assert summary["inputs"] == {"images": ["float32", ["batch", 3, "height", "width"]]}
    assert summary["outputs"] == {"logits": ["float32", ["batch", num_classes, "height", "width"]]}


@pytest.mark.parametrize("shape", [(1, 3, 128, 128), (2, 3, 97, 161)])
def test_onnxruntime_matches_pytorch(demo_checkpoint, contextrast_onnx, shape):
    wrapper = InferenceWrapper(inference_model(DEMO_CONFIG, demo_checkpoint))
    images = random_images(shape[0], shape[2], shape[3], seed=7)
    reference = torch_forward(wrapper, images)
    output = ort_session(contextrast_onnx).run(None, {"images": images})[0]
    assert output.shape == (shape[0], reference.shape[1], shape[2], shape[3])
    assert np.abs(reference).max() > 0.1  # informative logits, not the ~1e-2 of a fresh network
    # The logits reach ~80 (expected for this checkpoint: see conftest.py) and float32 rounding
    # differs between CPUs (kernel choice), so the bound is relative to the largest logit.
    assert_close_to_reference(output, reference, rtol=FP32_RTOL, atol=FP32_ATOL, what="logits")
    assert np.mean(output.argmax(1) == reference.argmax(1)) >= 0.999


def test_labels_output(demo_checkpoint, tmp_path):
    path = str(tmp_path / "labels.onnx")
    argv = ["--config-file", DEMO_CONFIG, "--weights", demo_checkpoint, "--output", path]
    assert (
        export_onnx.main(argv + ["--output-kind", "labels", "--height", "96", "--width", "80"]) == 0
    )
    summary = onnx_graph_summary(path)
    assert summary["outputs"] == {"labels": ["int64", [1, 96, 80]]}
    images = random_images(1, 96, 80, seed=3)
    logits = torch_forward(InferenceWrapper(inference_model(DEMO_CONFIG, demo_checkpoint)), images)
    labels = ort_session(path).run(None, {"images": images})[0]
    assert labels.dtype == np.int64
    assert np.mean(labels == logits.argmax(1)) >= 0.999


def test_export_with_images(demo_checkpoint, tmp_path):
    import cv2

    paths = []
    for i, size in enumerate([(70, 90), (64, 100)]):
        image = np.random.default_rng(i).integers(0, 256, size=(*size, 3), dtype=np.uint8)
        paths.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(paths[-1], image)
    out = str(tmp_path / "m.onnx")
    argv = [
        "--config-file",
        DEMO_CONFIG,
        "--weights",
        demo_checkpoint,
        "--output",
        out,
        "--dynamic",
    ]
    assert export_onnx.main(argv + ["--images", *paths]) == 0


def _save(tmp_path, model, name="ckpt.pth") -> str:
    path = str(tmp_path / name)
    torch.save({"model": model.state_dict(), "iteration": 0}, path)
    return path


def test_wrong_class_count_lists_the_keys(tmp_path):
    other = build_training_model(setup_cfg(DEMO_CONFIG, ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", "5"]))
    argv = ["--config-file", DEMO_CONFIG, "--weights", _save(tmp_path, other)]
    with pytest.raises(SystemExit) as excinfo:
        export_onnx.main(argv + ["--output", str(tmp_path / "x.onnx")])
    message = str(excinfo.value.code)
    assert "2 tensors with different shapes" in message
    assert (
        "sem_seg_head.predictor.weight: (5, 64, 1, 1) in the checkpoint, (8, 64, 1, 1) in the "
        "model" in message
    )
    assert "sem_seg_head.predictor.bias" in message
    assert not (tmp_path / "x.onnx").exists()


def test_wrong_architecture_lists_the_keys(tmp_path):
    # ResNet-101 instead of ResNet-50: res4 has 23 blocks instead of 6.
    other = build_training_model(setup_cfg(DEMO_CONFIG, ["MODEL.RESNETS.DEPTH", "101"]))
    model = inference_model(DEMO_CONFIG)
    with pytest.raises(CheckpointMismatchError) as excinfo:
        load_inference_weights(model, _save(tmp_path, other))
    message = str(excinfo.value)
    stripped = {k for k in other.state_dict() if not k.startswith(TRAINING_ONLY_PREFIX)}
    extra = sorted(stripped - set(model.state_dict()))
    assert extra and "backbone.res4.6.conv1.weight" in extra
    assert f"{len(extra)} checkpoint tensors the model does not have:" in message
    assert extra[0] in message
    # Long lists are cut, with the count.
    assert f"... and {len(extra) - MAX_LISTED_KEYS} more" in message
    assert "missing from the checkpoint" not in message


def test_missing_keys_are_listed(tmp_path, demo_checkpoint):
    state = read_checkpoint(demo_checkpoint)
    del state["backbone.stem.conv1.weight"]
    path = str(tmp_path / "partial.pth")
    torch.save(state, path)  # a bare state dict is accepted too
    with pytest.raises(CheckpointMismatchError, match="model tensors missing from the checkpoint"):
        load_inference_weights(inference_model(DEMO_CONFIG), path)


def test_baseline_checkpoint_loads_without_dropping(tmp_path):
    baseline = build_training_model(setup_cfg(BASELINE_CONFIG))
    report = load_inference_weights(inference_model(DEMO_CONFIG), _save(tmp_path, baseline))
    assert report["dropped"] == []


def test_dynamo_is_the_default_exporter():
    args = export_onnx.build_parser().parse_args(["--config-file", "c", "--output", "o"])
    assert args.exporter == "dynamo"  # the fixtures' exports above are dynamo graphs


def test_torchscript_exporter(demo_checkpoint, tmp_path, contextrast_onnx):
    # The deprecated exporter stays available behind --exporter torchscript: same contract,
    # parity, and no training-only weight (by name or by value).
    path = str(tmp_path / "torchscript.onnx")
    argv = ["--config-file", DEMO_CONFIG, "--weights", demo_checkpoint, "--output", path]
    assert export_onnx.main(argv + ["--dynamic", "--exporter", "torchscript"]) == 0
    summary = onnx_graph_summary(path)
    assert not [n for n in summary["initializers"] if "contrast" in n]
    assert summary["inputs"] == onnx_graph_summary(contextrast_onnx)["inputs"]
    assert summary["outputs"] == onnx_graph_summary(contextrast_onnx)["outputs"]
    heads = [
        v.numpy()
        for k, v in read_checkpoint(demo_checkpoint).items()
        if k.startswith(TRAINING_ONLY_PREFIX) and v.numel() > 1
    ]
    for init in onnx.load(path).graph.initializer:
        array = numpy_helper.to_array(init)
        assert not any(array.shape == h.shape and np.allclose(array, h) for h in heads), init.name
    images = random_images(2, 97, 161, seed=5)
    reference = torch_forward(
        InferenceWrapper(inference_model(DEMO_CONFIG, demo_checkpoint)), images
    )
    output = ort_session(path).run(None, {"images": images})[0]
    assert_close_to_reference(output, reference, rtol=FP32_RTOL, atol=FP32_ATOL, what="logits")


def test_output_folder_is_created_or_named(static_onnx, tmp_path):
    # The fixture's script call wrote into two folders that did not exist.
    assert os.path.isfile(static_onnx) and os.path.basename(os.path.dirname(static_onnx)) == "yet"
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    output = blocker / "sub" / "m.onnx"
    argv = ["--config-file", BASELINE_CONFIG, "--output", str(output), "--exporter", "torchscript"]
    with pytest.raises(SystemExit) as excinfo:
        export_onnx.main(argv + ["--height", "32", "--width", "32"])
    message = str(excinfo.value.code)
    assert message.startswith(f"error: --output {output}: cannot create the folder ")
    assert str(blocker) in message and not output.exists()


def test_head_attached_projection_heads_never_reach_onnx(tmp_path):
    # MODEL.CONTEXTRAST.FEATURE_SOURCE head: the projection heads read the head's ASPP output.
    # The network as training builds it (projection heads included), exported as it is: its
    # graph is the baseline's, with the same weights and none of the projection heads'.
    opts = ["MODEL.CONTEXTRAST.FEATURE_SOURCE", "head", "MODEL.CONTEXTRAST.IN_FEATURES",
            "['aspp']", "MODEL.CONTEXTRAST.LAYER_WEIGHTS", "[1.0]"]  # fmt: skip
    torch.manual_seed(0)
    model = jitter_weights(build_training_model(setup_cfg(DEMO_CONFIG, opts)))  # distinct values
    assert model.training and list(model.contrast_heads) == ["aspp"]
    state = model.state_dict()
    heads = [v.numpy() for k, v in state.items() if k.startswith(TRAINING_ONLY_PREFIX)]
    baseline = inference_model(BASELINE_CONFIG)
    baseline.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIX)}
    )
    sample = torch.from_numpy(random_images(1, 64, 96))
    exports = {}
    for name, network in (("head", model), ("base", baseline)):
        exports[name] = str(tmp_path / f"{name}.onnx")
        export_graph(InferenceWrapper(network), exports[name], sample, dynamic=False,
                     exporter="torchscript")  # fmt: skip
    # The exporter numbers unnamed initializers as it traces: compare them as a multiset.
    ours, base = (
        sorted(
            (array.shape, array.tobytes())
            for array in map(numpy_helper.to_array, onnx.load(exports[k]).graph.initializer)
        )
        for k in ("head", "base")
    )
    assert ours == base
    assert not {(a.shape, a.tobytes()) for a in heads} & set(ours)
    output = ort_session(exports["head"]).run(None, {"images": sample.numpy()})[0]
    reference = torch_forward(InferenceWrapper(baseline), sample.numpy())
    assert_close_to_reference(output, reference, rtol=FP32_RTOL, atol=FP32_ATOL, what="logits")
