#!/usr/bin/env python
"""Semantic segmentation of images, a video or a webcam with a PyTorch model or an ONNX file.

    python tools/predict.py --config-file C --weights W --input "imgs/*.png" --output out/
    python tools/predict.py --onnx model.onnx --input imgs/ --output out/
    python tools/predict.py --onnx model.onnx --video-input clip.mp4 --output out/
    python tools/predict.py --onnx model.onnx --webcam --output out/ --max-frames 100

``--input`` takes files, folders (their images) and glob patterns. For each image it writes
``<name>_labels.png`` (uint8 class ids) and ``<name>_overlay.png`` (detectron2's
``Visualizer.draw_sem_seg`` with a legend of the classes present); for a video, the overlay
video ``<name>_overlay.mp4``. An ``.onnx`` file from ``deploy/export_onnx.py`` needs no config:
its metadata gives the input format, test resize, class names and colours; a file with a static
input size gets each image resized to it and the prediction resized back. A progress bar shows
the time per image; the mean network time is printed at the end. Images that cannot be read are
skipped and listed at the end (exit status 1). Trailing ``KEY VALUE`` pairs override the config.
"""

import argparse
import glob
import logging
import os
import sys
import time

import cv2
import numpy as np
from tqdm import tqdm

from contextrast.export import (
    ORT_BACKENDS,
    Predictor,
    UnreadableImageError,
    draw_overlay,
    read_bgr,
    setup_logging,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
logger = logging.getLogger("contextrast.predict")


def build_parser() -> argparse.ArgumentParser:
    """The command line of :func:`main`."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--config-file", metavar="FILE", help="PyTorch model config")
    model.add_argument("--onnx", metavar="FILE", help="ONNX file from deploy/export_onnx.py")
    parser.add_argument("--weights", metavar="FILE", help="checkpoint (with --config-file)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", metavar="PATH", help="files, folders or globs")
    source.add_argument("--video-input", metavar="FILE", help="a video file (OpenCV)")
    source.add_argument("--webcam", action="store_true", help="camera 0 (OpenCV)")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--backend", choices=sorted(ORT_BACKENDS), default="ort-cpu")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads")
    parser.add_argument("--opacity", type=float, default=0.5, help="overlay opacity")
    parser.add_argument("--max-frames", type=int, default=0, help="video/webcam: stop after N")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return parser


def list_images(patterns):
    """Image files of ``patterns`` (files, folders, globs), sorted per pattern, no repeats."""
    files = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = [os.path.join(pattern, f) for f in sorted(os.listdir(pattern))]
            found = [f for f in found if f.lower().endswith(IMAGE_SUFFIXES)]
        elif any(c in pattern for c in "*?["):
            found = sorted(glob.glob(pattern, recursive=True))
        else:
            found = [pattern]  # read_bgr names it if it is missing
        if not found:
            raise FileNotFoundError(f"--input {pattern}: no image found")
        files.extend(f for f in found if f not in files)
    return files


def predict_images(predictor: Predictor, files, output: str, opacity: float):
    """Labels and overlays of ``files``.

    Returns:
        (the network time of each image read (s), the errors of the files that could not be read).
    """
    meta, times, unreadable = predictor.metadata, [], []
    bar = tqdm(files, desc="images", unit="img")
    for path in bar:
        try:
            image = read_bgr(path)
        except (FileNotFoundError, UnreadableImageError) as e:
            unreadable.append(str(e))  # the others are still predicted
            continue
        labels = predictor(image).astype(np.uint8)
        times.append(predictor.last_time_s)
        bar.set_postfix(ms=f"{1e3 * predictor.last_time_s:.1f}")
        stem = os.path.join(output, os.path.splitext(os.path.basename(path))[0])
        cv2.imwrite(stem + "_labels.png", labels)
        overlay = draw_overlay(image, labels, meta.class_names, meta.palette, alpha=opacity)
        cv2.imwrite(stem + "_overlay.png", overlay)
    return times, unreadable


def predict_video(predictor: Predictor, capture, name: str, output: str, args) -> list:
    """``<name>_overlay.mp4`` from the frames of ``capture``; returns each frame's network time."""
    meta, times, writer = predictor.metadata, [], None
    path = os.path.join(output, f"{name}_overlay.mp4")
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if args.max_frames:
        total = min(total, args.max_frames) if total > 0 else args.max_frames
    bar = tqdm(total=total if total > 0 else None, desc=name, unit="frame")
    while not args.max_frames or len(times) < args.max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        labels = predictor(frame)
        times.append(predictor.last_time_s)
        overlay = draw_overlay(
            frame, labels, meta.class_names, meta.palette, alpha=args.opacity, fixed_height=True
        )
        if writer is None:
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            size = (overlay.shape[1], overlay.shape[0])
            writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        writer.write(overlay)
        bar.update(1)
        bar.set_postfix(ms=f"{1e3 * predictor.last_time_s:.1f}")
    bar.close()
    capture.release()
    if writer is None:
        raise ValueError(f"{name}: no frame could be read")
    writer.release()
    logger.info("Wrote %s (%d frames)", path, len(times))
    return times


def open_capture(args):
    """(cv2.VideoCapture, name) of ``--video-input`` or ``--webcam``; errors name the file."""
    if args.webcam:
        capture, name = cv2.VideoCapture(0), "webcam"
    else:
        if not os.path.isfile(args.video_input):
            raise FileNotFoundError(f"{args.video_input}: no such video file")
        capture = cv2.VideoCapture(args.video_input)
        name = os.path.splitext(os.path.basename(args.video_input))[0]
    if not capture.isOpened():
        raise ValueError(f"{args.video_input or 'camera 0'}: OpenCV cannot open it")
    return capture, name


def main(argv=None) -> int:
    """CLI entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(
            f"--output {args.output} is a file: --output names the folder the labels and "
            "overlays are written to"
        )
    setup_logging()
    try:
        if args.onnx:
            predictor = Predictor(args.onnx, backend=args.backend, threads=args.threads)
        else:
            predictor = Predictor(args.config_file, args.weights, opts=args.opts)
        os.makedirs(args.output, exist_ok=True)
        start = time.perf_counter()
        unreadable = []
        if args.input:
            files = list_images(args.input)
            times, unreadable = predict_images(predictor, files, args.output, args.opacity)
        else:
            capture, name = open_capture(args)
            times = predict_video(predictor, capture, name, args.output, args)
    except (OSError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    wall = time.perf_counter() - start
    if times:
        print(
            f"{len(times)} images with {predictor.backend} ({predictor.metadata.precision}): "
            f"network {1e3 * np.mean(times):.1f} ms / image (median "
            f"{1e3 * np.median(times):.1f}), {1e3 * wall / len(times):.1f} ms / image with "
            f"reading, resizing and drawing; outputs in {args.output}"
        )
    if unreadable:
        sys.exit(
            f"error: {len(unreadable)} of {len(files)} images could not be read:\n  "
            + "\n  ".join(unreadable)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
