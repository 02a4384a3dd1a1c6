"""ContextrastCheckpointer: atomic checkpoint writes and strict weight loading.

Two failure modes of detectron2's ``DetectionCheckpointer`` matter for long jobs:

- ``save`` writes the ``.pth`` in place and then points ``last_checkpoint`` at it. A job killed
  mid-write leaves a truncated file that ``--resume`` then picks. Here the data goes to a
  temporary file in the same folder, is fsynced and renamed over the target (``os.replace`` is
  atomic within a file system), and ``last_checkpoint`` is rewritten the same way only after that.
- loading a checkpoint of another architecture or class count only *warns* and silently trains
  the mismatched tensors from scratch. Here (``MODEL.WEIGHTS_STRICT``, default True) any tensor
  whose shape differs, and any model tensor the checkpoint lacks, is an error listing them, with
  two expected exceptions: the training-only projection heads (``contrast_heads.``), and the
  non-backbone parts when the checkpoint holds backbone weights only (an ImageNet initialisation).

``exact=True`` is the check of deployment (``contextrast.export``): every tensor of the model and of
the checkpoint must match, except the checkpoint's training-only tensors, which are dropped and
reported (:class:`LoadReport`).
"""

import glob
import logging
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

__all__ = [
    "BACKBONE_PREFIX",
    "MAX_LISTED_KEYS",
    "TRAINING_ONLY_PREFIX",
    "CheckpointMismatchError",
    "ContextrastCheckpointer",
    "LoadReport",
    "UnreadableCheckpointError",
    "atomic_write",
]

logger = logging.getLogger(__name__)

# Module prefix of everything training-only in ContextrastSegmentor (its ``contrast_heads``
# projection heads, docs/architecture.md): a baseline or inference network lacks these tensors.
TRAINING_ONLY_PREFIX = "contrast_heads."
BACKBONE_PREFIX = "backbone."
MAX_LISTED_KEYS = 40  # entries per category in a mismatch error, then "... and N more"
_TMP_SUFFIX = ".tmp"
_DDP_PREFIX = "module."  # what a (Distributed)DataParallel wrapper adds to every key


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model (raised with ``MODEL.WEIGHTS_STRICT`` and ``exact``)."""


class UnreadableCheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read (empty, truncated, not a torch file)."""


@dataclass
class LoadReport:
    """What the last :meth:`ContextrastCheckpointer.load` did with the checkpoint's tensors.

    Attributes:
        loaded: checkpoint tensors loaded into the model.
        dropped: names of the checkpoint's training-only tensors (``contrast_heads.*``) that the
            model does not have, sorted (e.g. a Contextrast checkpoint in an inference network).
        dropped_elements: their number of elements.
    """

    loaded: int = 0
    dropped: List[str] = field(default_factory=list)
    dropped_elements: int = 0


def _fsync_dir(path: str) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, write: Callable, mode: str = "wb") -> None:
    """Write ``path`` all-or-nothing: temp file in the same folder, fsync, ``os.replace``.

    Args:
        path: destination file.
        write: called with the open temporary file object.
        mode: ``"wb"`` or ``"w"``.
    """
    folder, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=_TMP_SUFFIX)
    try:
        # mkstemp creates the file private (0600); give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _strip_ddp_prefix(state: Dict) -> None:
    """Remove ``module.`` in place when *every* key has it, as fvcore's loader does.

    torch's ``consume_prefix_in_state_dict_if_present`` alone strips it from whichever keys have
    it; a model with a child named ``module`` would then lose a prefix it needs.
    """
    if all(k.startswith(_DDP_PREFIX) for k in state):
        consume_prefix_in_state_dict_if_present(state, _DDP_PREFIX)


def _missing_unless_aliased(model: nn.Module, keys: List[str]) -> List[str]:
    """Drop the missing keys whose tensor was loaded under another name.

    A module reached through two attributes has its tensors in ``state_dict()`` under both names;
    the checkpoint may hold only one of them. Same rule as fvcore's checkpointer (whose helper is
    private): a name is missing only if every name of its tensor is.
    """
    missing = set(keys)
    names_of = defaultdict(list)  # tensor -> its names in the state_dict
    for name, tensor in model.state_dict(keep_vars=True).items():
        names_of[tensor].append(name)
    for names in names_of.values():
        if not all(n in missing for n in names):
            missing.difference_update(names)
    return sorted(missing)


def _listing(title: str, lines: List[str]) -> str:
    shown = "".join(f"\n    {line}" for line in lines[:MAX_LISTED_KEYS])
    extra = len(lines) - MAX_LISTED_KEYS
    more = f"\n    ... and {extra} more" if extra > 0 else ""
    return f"\n  {len(lines)} {title}:{shown}{more}"


class ContextrastCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` with atomic saves and (optionally) strict loading."""

    def __init__(
        self, model, save_dir: str = "", *, strict: bool = True, exact: bool = False, **kwargs
    ):
        """
        Args:
            model, save_dir, kwargs: as for ``DetectionCheckpointer``.
            strict: ``MODEL.WEIGHTS_STRICT``; False keeps detectron2's skip-and-warn loading.
            exact: stricter still (implies ``strict``): checkpoint tensors the model does not
                have are errors too, except the training-only ones, and backbone-only
                checkpoints are not accepted. For inference networks (deployment).
        """
        super().__init__(model, save_dir, **kwargs)
        self.strict = strict or exact
        self.exact = exact
        self.last_load_report: Optional[LoadReport] = None
        self._loading = ""

    # ---- saving ---------------------------------------------------------------------------
    def _atomic(self) -> bool:
        # Remote save dirs (PathManager URLs) have no rename; they keep the parent's behaviour.
        return os.path.isdir(self.save_dir)

    def save(self, name: str, **kwargs) -> None:
        """Same as ``Checkpointer.save``, but all-or-nothing (see the module docstring)."""
        if not self.save_dir or not self.save_to_disk:
            return
        if not self._atomic():
            return super().save(name, **kwargs)
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", path)
        atomic_write(path, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if not self._atomic():
            return super().tag_last_checkpoint(last_filename_basename)
        path = os.path.join(self.save_dir, "last_checkpoint")
        atomic_write(path, lambda f: f.write(last_filename_basename), mode="w")

    def remove_stale_temporaries(self) -> List[str]:
        """Delete temporary files of saves that never completed (a killed job); main process."""
        if not (self.save_to_disk and self.save_dir and self._atomic()):
            return []
        stale = []
        for pattern in (f".*.pth.*{_TMP_SUFFIX}", f".last_checkpoint.*{_TMP_SUFFIX}"):
            stale += glob.glob(os.path.join(self.save_dir, pattern))
        for path in stale:
            logger.warning("Removing %s, left by a save that did not complete", path)
            os.unlink(path)
        return stale

    def resume_or_load(self, path: str, *, resume: bool = True):
        if resume:
            self.remove_stale_temporaries()
        return super().resume_or_load(path, resume=resume)

    # ---- loading --------------------------------------------------------------------------
    def load(self, path, *args, **kwargs):
        """``Checkpointer.load``, with the file named when it is missing or unreadable.

        Raises:
            FileNotFoundError: a local ``path`` that does not exist (URLs are fetched as before).
            UnreadableCheckpointError: a file torch cannot load (empty, truncated, ...).
            CheckpointMismatchError: see the module docstring.
        """
        if path and "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint {path} not found (no such file)")
        self._loading = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading = ""

    def _torch_load(self, f):
        try:
            return super()._torch_load(f)
        except Exception as e:
            others = sorted(glob.glob(os.path.join(os.path.dirname(f) or ".", "*.pth")))
            if os.path.isfile(f) and os.path.getsize(f) == 0:
                reason = "the file is empty"
            else:
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise UnreadableCheckpointError(
                f"Cannot read checkpoint {f} ({reason}). It may be truncated, "
                f"e.g. written by a job that was killed while saving without atomic writes. "
                f"Checkpoints in its folder: {[os.path.basename(p) for p in others]}; point "
                "MODEL.WEIGHTS at another one, or 'last_checkpoint' at it to --resume from it."
            ) from e

    def _load_model(self, checkpoint):
        model_keys = set(self.model.state_dict())
        state = checkpoint["model"]
        _strip_ddp_prefix(state)  # as the parent does (DDP checkpoints)
        dropped = sorted(
            k for k in state if k.startswith(TRAINING_ONLY_PREFIX) and k not in model_keys
        )
        elements = sum(int(np.prod(tuple(state[k].shape))) for k in dropped)
        shared = len(model_keys & set(state))
        incompatible = super()._load_model(checkpoint)
        # Expected when a Contextrast checkpoint meets a baseline / inference network: reported
        # here instead of detectron2's warning about unused checkpoint keys.
        for k in dropped:
            incompatible.unexpected_keys.remove(k)
        if dropped:
            logger.info(
                "Dropped %d training-only tensors (%s*, %d elements) from %s",
                len(dropped),
                TRAINING_ONLY_PREFIX,
                elements,
                self._loading,
            )
        if self.strict:
            self._check_strict(incompatible, model_keys)
        loaded = shared - len(incompatible.incorrect_shapes)
        self.last_load_report = LoadReport(loaded, dropped, elements)
        return incompatible

    def _check_strict(self, incompatible, model_keys) -> None:
        reshaped = {k for k, _, _ in incompatible.incorrect_shapes}
        # The parent drops mismatched tensors before loading, so they also come back as missing.
        missing_all = set(incompatible.missing_keys) - reshaped
        loaded = model_keys - missing_all - reshaped
        # BatchNorm fills a missing num_batches_tracked itself, so it never counts as loaded.
        loaded = {k for k in loaded if not k.endswith("num_batches_tracked")}
        missing = _missing_unless_aliased(self.model, sorted(missing_all))
        missing = [k for k in missing if not k.startswith(TRAINING_ONLY_PREFIX)]
        backbone_only = (
            not self.exact and bool(loaded) and all(k.startswith(BACKBONE_PREFIX) for k in loaded)
        )
        if backbone_only:
            heads = [k for k in missing if not k.startswith(BACKBONE_PREFIX)]
            if heads:
                logger.info(
                    "Backbone-only checkpoint %s: %d tensors outside the backbone start from "
                    "their initialisation",
                    self._loading,
                    len(heads),
                )
            missing = [k for k in missing if k.startswith(BACKBONE_PREFIX)]
        shapes = [
            f"{k}: {tuple(ckpt)} in the checkpoint, {tuple(model)} in the model"
            for k, ckpt, model in incompatible.incorrect_shapes
            if not k.startswith(TRAINING_ONLY_PREFIX)
        ]
        if len(shapes) < len(incompatible.incorrect_shapes):
            # Another PROJ_DIM: irrelevant at inference; in training the heads start afresh.
            logger.warning(
                "Checkpoint %s: training-only projection heads (%s) of another shape start "
                "from their initialisation",
                self._loading,
                TRAINING_ONLY_PREFIX,
            )
        unexpected = sorted(incompatible.unexpected_keys)  # training-only ones already removed
        if not shapes and not missing and not (self.exact and unexpected):
            return
        mode = "exactly" if self.exact else "(MODEL.WEIGHTS_STRICT True)"
        msg = f"Checkpoint {self._loading} does not fit the model {mode}:"
        if shapes:
            msg += _listing("tensors with different shapes", shapes)
        if missing:
            msg += _listing("model tensors missing from the checkpoint", sorted(missing))
        if unexpected:
            msg += _listing("checkpoint tensors the model does not have", unexpected)
        if self.exact:
            msg += (
                "\nIt was saved from another architecture or class count: check the config file "
                "and its options (MODEL.BACKBONE, MODEL.RESNETS / MODEL.HRNET, "
                "MODEL.SEM_SEG_HEAD.NUM_CLASSES) against the checkpoint's config.yaml."
            )
            raise CheckpointMismatchError(msg)
        msg += (
            "\nIt was saved from another architecture or class count (compare MODEL.BACKBONE, "
            "MODEL.RESNETS / MODEL.HRNET and MODEL.SEM_SEG_HEAD.NUM_CLASSES with its config.yaml)."
            " Backbone-only (ImageNet) checkpoints load as they are. To fine-tune on purpose "
            "with the mismatched tensors initialised from scratch, set MODEL.WEIGHTS_STRICT False."
        )
        raise CheckpointMismatchError(msg)
