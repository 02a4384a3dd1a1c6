"""Prediction with a deployed model: the ONNX metadata contract round-trips, ``tools/predict.py``
runs an ``.onnx`` file (no config) and a checkpoint on image files, folders, globs and a video
the test writes, and agrees with PyTorch; a static ONNX file predicts images of other sizes;
bad inputs (a corrupt image among good ones, a truncated ONNX file) get errors that name them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from helpers import BASELINE_CONFIG, DEMO_CONFIG, ROOT, subprocess_env, tool

from contextrast.config import load_config
from contextrast.export import (
    OnnxModelError,
    Predictor,
    build_inference_model,
    jitter_weights,
    metadata_from_config,
    ort_session,
    read_bgr,
    read_metadata,
)
from deploy import export_onnx

PREDICT = tool("tools", "predict.py")


def predict(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, PREDICT, *args],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc


@pytest.fixture(scope="module")
def demo_images(tmp_path_factory):
    """Three validation images of the built-in dataset, copied into a folder."""
    folder = tmp_path_factory.mktemp("images")
    for record in DatasetCatalog.get("synth_streets_val")[:3]:
        shutil.copy(record["file_name"], folder)
    return sorted(str(folder / f) for f in os.listdir(folder))


def test_metadata_round_trips(contextrast_onnx):
    cfg = load_config(DEMO_CONFIG, device="cpu")
    meta = read_metadata(contextrast_onnx)
    dataset = MetadataCatalog.get(cfg.DATASETS.TEST[0])
    assert meta.class_names == list(dataset.stuff_classes)
    assert meta.palette == [tuple(c) for c in dataset.stuff_colors]
    assert (meta.input_format, meta.input_range, meta.ignore_label) == ("BGR", "0-255", 255)
    assert meta.training_resolution == tuple(cfg.INPUT.CROP.SIZE)
    assert (meta.min_size_test, meta.max_size_test) == (0, cfg.INPUT.MAX_SIZE_TEST)
    assert (meta.precision, meta.output_kind, meta.contextrast_enabled) == ("fp32", "logits", True)
    assert meta == metadata_from_config(cfg)
    # The hash identifies the Contextrast recipe: another projection size gives another hash.
    other = load_config(DEMO_CONFIG, ["MODEL.CONTEXTRAST.PROJ_DIM", "32"], device="cpu")
    assert metadata_from_config(other).config_hash != meta.config_hash


def test_onnx_without_metadata_is_a_clear_error(contextrast_onnx, tmp_path):
    model = onnx.load(contextrast_onnx)
    del model.metadata_props[:]
    bare = str(tmp_path / "bare.onnx")
    onnx.save(model, bare)
    with pytest.raises(ValueError, match=r"bare\.onnx: ONNX metadata_props lack .*class_names"):
        Predictor(bare)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        Predictor(str(tmp_path / "missing.onnx"))
    with pytest.raises(ValueError, match="unknown backend 'ort-tpu'"):
        Predictor(contextrast_onnx, backend="ort-tpu")


def test_predict_onnx_and_pytorch_agree_on_files_folders_and_globs(
    demo_checkpoint, contextrast_onnx, demo_images, tmp_path
):
    folder = os.path.dirname(demo_images[0])
    onnx_out, torch_out = tmp_path / "onnx", tmp_path / "torch"
    # A folder and a glob that matches the same files again: each image once.
    proc = predict("--onnx", contextrast_onnx, "--input", folder, folder + "/*.png",
                   "--output", str(onnx_out))  # fmt: skip
    assert "3 images with ort-cpu (fp32)" in proc.stdout and "ms / image" in proc.stdout
    predict("--config-file", DEMO_CONFIG, "--weights", demo_checkpoint, "--input", demo_images[0],
            demo_images[1], demo_images[2], "--output", str(torch_out))  # fmt: skip
    num_classes = len(read_metadata(contextrast_onnx).class_names)
    for path in demo_images:
        stem = os.path.splitext(os.path.basename(path))[0]
        image = cv2.imread(path)
        ours = cv2.imread(str(onnx_out / f"{stem}_labels.png"), cv2.IMREAD_UNCHANGED)
        reference = cv2.imread(str(torch_out / f"{stem}_labels.png"), cv2.IMREAD_UNCHANGED)
        assert ours.shape == image.shape[:2] and ours.max() < num_classes
        assert np.mean(ours == reference) >= 0.999
        overlay = cv2.imread(str(onnx_out / f"{stem}_overlay.png"))
        assert overlay.shape[1] == image.shape[1] and overlay.shape[0] > image.shape[0]  # legend
        assert not np.array_equal(overlay[: image.shape[0]], image)  # labels drawn over it


def test_predictor_api_matches_the_script(contextrast_onnx, demo_images, tmp_path):
    predictor = Predictor(contextrast_onnx)
    image = read_bgr(demo_images[0])
    logits = predictor.logits(image)
    assert logits.shape == (predictor.metadata.num_classes, *image.shape[:2])
    labels = predictor(image)
    assert np.array_equal(labels, logits.argmax(0)) and predictor.last_time_s > 0
    predict("--onnx", contextrast_onnx, "--input", demo_images[0], "--output", str(tmp_path))
    stem = os.path.splitext(os.path.basename(demo_images[0]))[0]
    written = cv2.imread(str(tmp_path / f"{stem}_labels.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(written, labels)


def test_predict_video(contextrast_onnx, demo_images, tmp_path):
    clip = str(tmp_path / "clip.mp4")
    frames = [cv2.imread(p) for p in demo_images] * 2  # 6 frames
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    proc = predict("--onnx", contextrast_onnx, "--video-input", clip, "--output", str(tmp_path))
    assert "6 images with ort-cpu" in proc.stdout
    capture = cv2.VideoCapture(str(tmp_path / "clip_overlay.mp4"))
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count += 1
        assert frame.shape[1] == width and frame.shape[0] > height  # overlay + legend
    assert count == 6


def test_predict_real_camvid_images(contextrast_onnx, camvid_root, tmp_path):
    # Real street images of another size and source than the demo's (the demo's classes).
    files = sorted(os.listdir(os.path.join(camvid_root, "val")))[:2]
    paths = [os.path.join(camvid_root, "val", f) for f in files]
    predict("--onnx", contextrast_onnx, "--input", *paths, "--output", str(tmp_path))
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        labels = cv2.imread(str(tmp_path / f"{stem}_labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == cv2.imread(path).shape[:2]


def test_bad_inputs_name_the_file(contextrast_onnx, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png at all")
    proc = predict("--onnx", contextrast_onnx, "--input", str(corrupt), "--output",
                   str(tmp_path / "o"), check=False)  # fmt: skip
    assert proc.returncode != 0 and "corrupt.png: not a readable image" in proc.stderr
    proc = predict("--onnx", contextrast_onnx, "--input", str(tmp_path / "none*.png"), "--output",
                   str(tmp_path / "o"), check=False)  # fmt: skip
    assert proc.returncode != 0 and "none*.png: no image found" in proc.stderr
    proc = predict("--onnx", contextrast_onnx, "--video-input", str(tmp_path / "no.mp4"),
                   "--output", str(tmp_path / "o"), check=False)  # fmt: skip
    assert proc.returncode != 0 and "no.mp4: no such video file" in proc.stderr


def test_output_naming_a_file_is_a_clear_error(tmp_path):
    existing = tmp_path / "labels.png"
    existing.write_bytes(b"a file the user has")
    proc = predict("--onnx", str(tmp_path / "model.onnx"), "--input", str(tmp_path),
                   "--output", str(existing), check=False)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"--output {existing} is a file: --output names the folder" in proc.stderr
    assert existing.read_bytes() == b"a file the user has"


def write_random_images(folder, sizes) -> list:
    """PNG files of random pixels, one per (height, width) in ``sizes``."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (height, width) in enumerate(sizes):
        path = str(folder / f"image{i}.png")
        cv2.imwrite(path, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        paths.append(path)
    return paths


# A network whose static-shape prediction has fine structure, so that resizing its logits with
# nearest-neighbour instead of bilinear interpolation changes 5-8% of the labels (a random demo
# network predicts one class on 97-100% of the pixels, and any resize agrees there): logits at
# stride 4 (DeepLabV3+ head on res2 and res5), a classifier of unit-variance weights, and its bias
# centring each logit over a random image, so that the argmax follows the features' variation.
STRUCTURED_OPTS = [
    "MODEL.SEM_SEG_HEAD.NAME", "SplitDeepLabV3PlusHead",
    "MODEL.SEM_SEG_HEAD.IN_FEATURES", "['res2', 'res5']",
    "MODEL.SEM_SEG_HEAD.PROJECT_FEATURES", "['res2']",
    "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", "[16]",
    "MODEL.SEM_SEG_HEAD.COMMON_STRIDE", "4",
]  # fmt: skip


@pytest.fixture(scope="module")
def structured_static_onnx(tmp_path_factory) -> str:
    """Static 1x3x64x96 export of the network described above."""
    folder = tmp_path_factory.mktemp("structured")
    torch.manual_seed(0)
    model = jitter_weights(build_inference_model(load_config(BASELINE_CONFIG, STRUCTURED_OPTS)))
    predictor = model.sem_seg_head.predictor
    torch.nn.init.normal_(predictor.weight, std=1.0)
    features = []
    hook = predictor.register_forward_hook(lambda module, inputs, output: features.append(inputs))
    with torch.no_grad():
        image = torch.randint(0, 256, (1, 3, 64, 96), generator=torch.Generator().manual_seed(1))
        model.forward_logits(image.float())
        hook.remove()
        mean = features[0][0].mean(dim=(0, 2, 3))
        predictor.bias.copy_(-predictor.weight[:, :, 0, 0] @ mean)
    weights = str(folder / "structured.pth")
    torch.save({"model": model.state_dict()}, weights)
    path = str(folder / "structured.onnx")
    argv = ["--config-file", BASELINE_CONFIG, "--weights", weights, "--output", path,
            "--height", "64", "--width", "96", "--exporter", "torchscript"]  # fmt: skip
    assert export_onnx.main(argv + STRUCTURED_OPTS) == 0
    return path


def test_static_onnx_resizes_images_to_its_input_and_back(structured_static_onnx, tmp_path):
    session = ort_session(structured_static_onnx)
    height, width = session.get_inputs()[0].shape[2:]
    paths = write_random_images(tmp_path, [(50, 70), (90, 130), (height, width)])
    proc = predict("--onnx", structured_static_onnx, "--input", *paths, "--output",
                   str(tmp_path / "out"))  # fmt: skip
    assert "3 images with ort-cpu" in proc.stdout
    assert proc.stdout.count(f"static input size {height}x{width}: images are resized") == 1
    meta = read_metadata(structured_static_onnx)
    for path in paths:
        image = cv2.imread(path)
        # Reference with OpenCV's resize, both ways (the tool resizes with torch).
        x = cv2.resize(image.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        x = x[:, :, ::-1] if meta.input_format == "RGB" else x
        logits = session.run(None, {"images": np.ascontiguousarray(x.transpose(2, 0, 1)[None])})
        size = image.shape[1::-1]
        back = [cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in logits[0][0]]
        reference = np.argmax(back, axis=0)
        stem = os.path.splitext(os.path.basename(path))[0]
        labels = cv2.imread(str(tmp_path / "out" / f"{stem}_labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == image.shape[:2]
        assert np.mean(labels == reference) >= 0.99
        # The comparison can tell the interpolations apart: no class dominates, and resizing
        # the logits nearest-neighbour would fail it (where the image is resized at all).
        assert np.bincount(reference.ravel()).max() < 0.5 * reference.size
        if image.shape[:2] != (height, width):
            nearest = [cv2.resize(c, size, interpolation=cv2.INTER_NEAREST) for c in logits[0][0]]
            assert np.mean(np.argmax(nearest, axis=0) == reference) < 0.98


def test_static_batch_of_several_images_is_a_clear_error(tmp_path):
    path = str(tmp_path / "batch2.onnx")
    argv = ["--config-file", DEMO_CONFIG, "--output", path, "--batch", "2", "--height", "32"]
    assert export_onnx.main(argv + ["--width", "32", "--exporter", "torchscript"]) == 0
    expected = r"batch2\.onnx has the static input shape \[2, 3, 32, 32\] .* export with --batch 1"
    with pytest.raises(ValueError, match=expected):
        Predictor(path)


def test_truncated_onnx_file_is_named(static_onnx, tmp_path):
    truncated = tmp_path / "truncated.onnx"
    data = Path(static_onnx).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxModelError, match=r"truncated\.onnx: not a readable ONNX model"):
        Predictor(str(truncated))
    with pytest.raises(OnnxModelError, match=r"truncated\.onnx: onnxruntime cannot load it"):
        ort_session(str(truncated))
    image = write_random_images(tmp_path, [(32, 32)])[0]
    proc = predict("--onnx", str(truncated), "--input", image, "--output", str(tmp_path / "o"),
                   check=False)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "truncated.onnx: not a readable ONNX model (truncated" in proc.stderr


def test_folder_with_a_corrupt_image_finishes_the_others(static_onnx, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    good = write_random_images(folder, [(64, 96), (64, 96)])
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    out = tmp_path / "out"
    proc = predict("--onnx", static_onnx, "--input", str(folder), "--output", str(out),
                   check=False)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "2 images with ort-cpu" in proc.stdout
    for path in good:
        stem = os.path.splitext(os.path.basename(path))[0]
        assert (out / f"{stem}_labels.png").is_file() and (out / f"{stem}_overlay.png").is_file()
    assert "1 of 3 images could not be read" in proc.stderr
    assert "broken.png: not a readable image" in proc.stderr
