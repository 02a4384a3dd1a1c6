"""Colour overlays of predicted labels with a class-name legend (``tools/predict.py``).

The overlay is detectron2's ``Visualizer.draw_sem_seg`` (class names written on the regions);
below it a legend strip lists the classes present, largest first, with their colours, so that a
small region whose name the visualizer skips is still named.
"""

from typing import Sequence, Tuple

import cv2
import numpy as np
from detectron2.data.catalog import Metadata
from detectron2.utils.visualizer import ColorMode, Visualizer

__all__ = ["draw_overlay", "draw_legend"]

LEGEND_ROW = 18  # pixels per legend row
SWATCH = 12  # side of a legend colour box


def draw_legend(
    labels: np.ndarray,
    class_names: Sequence[str],
    palette: Sequence[Tuple[int, int, int]],
    width: int,
    fixed_height: bool = False,
) -> np.ndarray:
    """A white (rows * LEGEND_ROW, width, 3) RGB strip naming the classes present in ``labels``.

    Args:
        labels: (H, W) class ids; values outside [0, K) (ignore) are not listed.
        class_names / palette: per class, RGB colours.
        width: strip width in pixels (the overlay's).
        fixed_height: room for all K classes, so that every frame of a video has one size.
    """
    ids, counts = np.unique(labels, return_counts=True)
    keep = ids < len(class_names)
    order = np.argsort(-counts[keep], kind="stable")
    ids, counts = ids[keep][order], counts[keep][order]
    entries = [f"{class_names[i]} {100.0 * c / labels.size:.0f}%" for i, c in zip(ids, counts)]
    per_row = max(1, width // 150)
    rows = max(1, -(-(len(class_names) if fixed_height else len(entries)) // per_row))
    strip = np.full((rows * LEGEND_ROW, width, 3), 255, dtype=np.uint8)
    for k, (class_id, text) in enumerate(zip(ids, entries)):
        x, y = (k % per_row) * 150 + 4, (k // per_row) * LEGEND_ROW + 3
        color = tuple(int(v) for v in palette[class_id])
        cv2.rectangle(strip, (x, y), (x + SWATCH, y + SWATCH), color, thickness=-1)
        cv2.putText(
            strip,
            text,
            (x + SWATCH + 4, y + SWATCH - 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return strip


def draw_overlay(
    image_bgr: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    palette: Sequence[Tuple[int, int, int]],
    *,
    alpha: float = 0.5,
    fixed_height: bool = False,
) -> np.ndarray:
    """``image_bgr`` with ``labels`` drawn over it and the legend below.

    Args:
        image_bgr: (H, W, 3) uint8, BGR (as ``cv2.imread`` gives).
        labels: (H, W) int class ids.
        class_names / palette: per class, RGB colours (from the ONNX metadata or the dataset).
        alpha: opacity of the label colours.
        fixed_height: legend sized for all classes (video frames of one size).

    Returns:
        (H + legend rows, W, 3) uint8 BGR image, ready for ``cv2.imwrite``.
    """
    meta = Metadata(stuff_classes=list(class_names), stuff_colors=[list(c) for c in palette])
    visualizer = Visualizer(image_bgr[:, :, ::-1], meta, instance_mode=ColorMode.IMAGE)
    overlay = visualizer.draw_sem_seg(labels, alpha=alpha).get_image()  # RGB
    legend = draw_legend(labels, class_names, palette, overlay.shape[1], fixed_height)
    return np.ascontiguousarray(np.concatenate([overlay, legend])[:, :, ::-1])
