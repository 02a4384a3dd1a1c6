"""Side-by-side panels of an image, its ground truth and the predictions of several models."""

from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = ["CAPTION_HEIGHT", "GAP", "colorize", "default_palette", "make_panel"]

CAPTION_HEIGHT = 20  # pixels of the title band above every tile
GAP = 4  # white pixels between two tiles
IGNORE_COLOR = (0, 0, 0)  # ignored / unlabelled pixels are drawn black


def default_palette(num_classes: int) -> List[Tuple[int, int, int]]:
    """A fixed, reproducible RGB palette for datasets without ``stuff_colors``."""
    rng = np.random.RandomState(0)
    return [tuple(int(v) for v in rng.randint(32, 256, size=3)) for _ in range(num_classes)]


def colorize(
    labels: np.ndarray, colors: Sequence[Sequence[int]], ignore_label: int = 255
) -> np.ndarray:
    """Colour a label map.

    Args:
        labels: (H, W) integer class ids; ``ignore_label`` or values without a colour are black.
        colors: RGB triple per class (the dataset's ``stuff_colors``).
        ignore_label: label drawn in :data:`IGNORE_COLOR`.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    lut = np.zeros((max(256, len(colors)), 3), dtype=np.uint8)
    lut[:] = IGNORE_COLOR
    lut[: len(colors)] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    lut[ignore_label] = IGNORE_COLOR
    return lut[np.asarray(labels, dtype=np.int64)]


def _caption(text: str, width: int) -> np.ndarray:
    band = np.full((CAPTION_HEIGHT, width, 3), 255, dtype=np.uint8)
    cv2.putText(
        band,
        text,
        (4, CAPTION_HEIGHT - 6),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    return band


def make_panel(
    tiles: Sequence[Tuple[str, np.ndarray]], background: Optional[Tuple[int, int, int]] = None
) -> np.ndarray:
    """Join equally sized RGB tiles left to right, each under a caption band.

    Args:
        tiles: (title, (H, W, 3) uint8 RGB) pairs, all of the same H and W.
        background: colour of the gaps; default white.

    Returns:
        (CAPTION_HEIGHT + H, n * W + (n - 1) * GAP, 3) uint8 RGB image.
    """
    if not tiles:
        raise ValueError("make_panel needs at least one tile")
    shapes = {tile.shape for _, tile in tiles}
    if len(shapes) != 1:
        raise ValueError(f"make_panel: tiles differ in shape: {sorted(shapes)}")
    h, w, _ = shapes.pop()
    n = len(tiles)
    panel = np.empty((CAPTION_HEIGHT + h, n * w + (n - 1) * GAP, 3), dtype=np.uint8)
    panel[:] = background if background is not None else (255, 255, 255)
    for i, (title, tile) in enumerate(tiles):
        x = i * (w + GAP)
        panel[:CAPTION_HEIGHT, x : x + w] = _caption(title, w)
        panel[CAPTION_HEIGHT:, x : x + w] = tile
    return panel
