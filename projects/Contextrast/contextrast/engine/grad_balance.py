"""Gradient balance between the segmentation loss and the contrastive term.

For each part of the network that both losses reach (backbone stages, the segmentation head),
:func:`gradient_balance` measures on training batches the norm of each loss's gradient, their
ratio and their cosine. The contrastive gradient is measured as *what it adds* to CE's:
``grad(L_CE + L_contrast) - grad(L_CE)``, so every option that shapes it (``START_ITER``,
``FEATURE_GRAD_SCALE``, ``GRAD_RATIO_CAP``, ``DETACH_ANCHORS``, ``FEATURE_SOURCE``) is measured
as training applies it. ``tools/grad_balance.py`` runs it on any config and checkpoint.
"""

import itertools
import logging
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn
from detectron2.utils.events import EventStorage
from torch import Tensor

__all__ = [
    "BalanceRow",
    "BalanceSetting",
    "measure_config",
    "CONTRASTIVE_LOSSES",
    "format_table",
    "gradient_balance",
    "parameter_groups",
]

logger = logging.getLogger(__name__)

# Training-only losses; every other loss of the model is the segmentation loss ("CE").
CONTRASTIVE_LOSSES = ("loss_contrast",)


def _stages(module: nn.Module, prefix: str) -> Dict[str, List[nn.Parameter]]:
    """Parameters of ``module`` grouped by child; a child that is a sequence of sequences (timm's
    EfficientNet ``blocks``: one Sequential per stage) is split into its stages."""
    children = list(module.named_children())
    params = [p for p in module.parameters() if p.requires_grad]
    holders = [(n, c) for n, c in children if any(p.requires_grad for p in c.parameters())]
    if len(holders) == 1 and not any(p.requires_grad for p in module.parameters(recurse=False)):
        name, child = holders[0]  # a wrapper (e.g. ``backbone.body``): look inside
        return _stages(child, f"{prefix}.{name}")
    groups: Dict[str, List[nn.Parameter]] = {}
    for name, child in children:
        seq = isinstance(child, (nn.Sequential, nn.ModuleList))
        if seq and all(isinstance(c, (nn.Sequential, nn.ModuleList)) for c in child):
            for i, stage in enumerate(child):
                groups[f"{prefix}.{name}.{i}"] = [p for p in stage.parameters() if p.requires_grad]
        else:
            groups[f"{prefix}.{name}"] = [p for p in child.parameters() if p.requires_grad]
    own = [p for p in module.parameters(recurse=False) if p.requires_grad]
    if own:
        groups[prefix] = own
    assert sum(len(v) for v in groups.values()) == len(params)
    return {k: v for k, v in groups.items() if v}


def parameter_groups(model: nn.Module) -> Dict[str, List[nn.Parameter]]:
    """The parts of a segmentor that both losses reach, shallowest first.

    Returns:
        name -> trainable parameters: one entry per backbone stage (``backbone.<...>``), then
        ``sem_seg_head``, ``backbone`` (all its stages) and ``shared`` (backbone + head). The
        projection heads, which only the contrastive term trains, are left out.
    """
    groups = _stages(model.backbone, "backbone")
    head = [p for p in model.sem_seg_head.parameters() if p.requires_grad]
    backbone = [p for ps in groups.values() for p in ps]
    groups.update(sem_seg_head=head, backbone=backbone, shared=backbone + head)
    return groups


@dataclass
class BalanceRow:
    """One parameter group's gradients, averaged over batches (means of per-batch values)."""

    group: str
    num_params: int
    ce_norm: float = 0.0
    contrast_norm: float = 0.0
    ratio: float = 0.0  # ||g_contrast|| / ||g_CE||
    cosine: float = 0.0
    per_batch: List[Dict[str, float]] = field(default_factory=list)


def _per_param(grads: Iterable, params: Sequence[Tensor]) -> Dict[int, Tensor]:
    """id(param) -> float64 flat gradient (zeros where the loss does not reach the param)."""
    return {
        id(p): (torch.zeros_like(p) if g is None else g).flatten().double()
        for g, p in zip(grads, params)
    }


def gradient_balance(
    model: nn.Module, batches: Sequence[List[Dict]], iteration: int = 0
) -> List[BalanceRow]:
    """Per-group norms, ratio and cosine of the CE and contrastive gradients.

    Args:
        model: a :class:`ContextrastSegmentor` with Contextrast enabled (put in training mode
            here: the contrastive term exists only in training).
        batches: detectron2 training batches (lists of records with "image" and "sem_seg").
        iteration: training iteration the losses are computed at (alpha's warm-up, START_ITER).

    Returns:
        One :class:`BalanceRow` per :func:`parameter_groups` entry.

    Raises:
        ValueError: if the model has no contrastive term.
    """
    if getattr(model, "criterion", None) is None:
        raise ValueError(
            "the model has no contrastive term (MODEL.CONTEXTRAST.ENABLED is False): "
            "there is no balance to measure"
        )
    groups = parameter_groups(model)
    params = groups["shared"]
    rows = {name: BalanceRow(name, sum(p.numel() for p in ps)) for name, ps in groups.items()}
    model.train()
    for batch in batches:
        with EventStorage(iteration):
            losses = model(batch)
        contrast = sum(losses[k] for k in CONTRASTIVE_LOSSES if k in losses)
        ce = sum(v for k, v in losses.items() if k not in CONTRASTIVE_LOSSES)
        g_ce = torch.autograd.grad(ce, params, retain_graph=True, allow_unused=True)
        g_all = torch.autograd.grad(ce + contrast, params, allow_unused=True)
        g_ce, g_all = _per_param(g_ce, params), _per_param(g_all, params)
        for name, ps in groups.items():
            a = torch.cat([g_ce[id(p)] for p in ps])
            b = torch.cat([g_all[id(p)] for p in ps]) - a  # what the contrastive term adds
            na, nb = a.norm().item(), b.norm().item()
            rows[name].per_batch.append(
                {
                    "ce_norm": na,
                    "contrast_norm": nb,
                    "ratio": nb / na if na > 0 else float("inf"),
                    "cosine": (a @ b).item() / (na * nb) if na > 0 and nb > 0 else 0.0,
                    "loss_ce": ce.detach().item(),
                    "loss_contrast": float(contrast.detach()) if torch.is_tensor(contrast) else 0.0,
                }
            )
    for row in rows.values():
        n = len(row.per_batch)
        for key in ("ce_norm", "contrast_norm", "ratio", "cosine"):
            setattr(row, key, sum(b[key] for b in row.per_batch) / n)
    return list(rows.values())


def format_table(rows: Sequence[BalanceRow]) -> str:
    """Markdown table of :func:`gradient_balance` rows."""
    lines = [
        "| parameters | count | norm g_CE | norm g_contrast | ratio | cosine |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.group} | {r.num_params:,} | {r.ce_norm:.4g} | {r.contrast_norm:.4g} | "
            f"{r.ratio:.3g} | {r.cosine:+.3f} |"
        )
    return "\n".join(lines)


@dataclass
class BalanceSetting:
    """What the contrastive term is at the iteration :func:`measure_config` measured."""

    iteration: int  # the training iteration the losses were computed at
    alpha: float  # the projection heads' loss weight there (WARMUP_ITERS)
    start_iter: int  # MODEL.CONTEXTRAST.START_ITER
    grad_scale: float  # multiplier of the heads' gradient into the network (0 before START_ITER)

    def describe(self) -> str:
        """One line for a report header."""
        text = f"iteration {self.iteration} (alpha {self.alpha:g}"
        if self.iteration < self.start_iter:
            return (
                f"{text}; before MODEL.CONTEXTRAST.START_ITER = {self.start_iter}: no contrastive "
                "gradient reaches the network, so every contrastive norm is 0)"
            )
        return f"{text}, gradient into the network x {self.grad_scale:g})"


def measure_config(cfg, num_batches: int, iteration: Optional[int] = None):
    """:func:`gradient_balance` of a config: the model built and its ``MODEL.WEIGHTS`` loaded as
    for training, on the first ``num_batches`` batches of its training loader (seeded by
    ``SEED``, 0 when random).

    Args:
        cfg: a Contextrast config (``MODEL.CONTEXTRAST.ENABLED``).
        num_batches: >= 1.
        iteration: training iteration of the losses (>= 0); None = the one training runs next
            from the checkpoint (its ``iteration``, the last one it finished, + 1; 0 without
            one), where a resumed run would apply the warm-up and ``START_ITER``.

    Returns:
        (rows, :class:`BalanceSetting` at that iteration).

    Raises:
        ValueError: Contextrast disabled, ``num_batches`` < 1 or ``iteration`` < 0.
        FileNotFoundError, UnreadableCheckpointError: ``MODEL.WEIGHTS`` is missing or cannot be
            read.
        CheckpointMismatchError: ``MODEL.WEIGHTS`` is of another architecture or class count.
    """
    from detectron2.utils.env import seed_all_rng

    from ..checkpoint import ContextrastCheckpointer
    from ..modeling.contrast import ContrastGradientGate
    from .trainer import ContextrastTrainer

    if not cfg.MODEL.CONTEXTRAST.ENABLED:
        raise ValueError(
            "MODEL.CONTEXTRAST.ENABLED is False: there is no contrastive gradient to compare; "
            "use the Contextrast config of the same network (a CE-only checkpoint loads into it)"
        )
    if num_batches < 1:
        raise ValueError(f"num_batches = {num_batches}: expected at least 1")
    if iteration is not None and iteration < 0:
        raise ValueError(f"iteration = {iteration}: expected a training iteration >= 0")
    seed_all_rng(cfg.SEED if cfg.SEED >= 0 else 0)
    model = ContextrastTrainer.build_model(cfg)
    checkpoint = ContextrastCheckpointer(model).load(cfg.MODEL.WEIGHTS) if cfg.MODEL.WEIGHTS else {}
    if iteration is None:
        # A checkpoint's "iteration" is the last one it finished; training resumes at the next.
        iteration = int(checkpoint["iteration"]) + 1 if "iteration" in checkpoint else 0
    loader = ContextrastTrainer.build_train_loader(cfg)
    batches = list(itertools.islice(iter(loader), num_batches))
    rows = gradient_balance(model, batches, iteration=iteration)
    gate = ContrastGradientGate(cfg)
    setting = BalanceSetting(
        iteration=iteration,
        alpha=model.criterion.effective_weight(iteration),
        start_iter=gate.start_iter,
        grad_scale=gate.scale_at(iteration),
    )
    return rows, setting
