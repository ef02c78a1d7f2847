"""One function per method: (context, y batch) -> signal estimates (B, C, H, W) in [-1, 1].

``joint`` is the paper's method (two diffusion priors, the core's JointSampler); ``pigdm`` and
``dps`` are the core's single-prior samplers with a Gaussian noise model; ``flow``, ``gan``,
``bm3d`` and ``lasso`` are the other baselines. Methods that do not model the noise get its mean
image μ_n and scalar std σ_n (fitted on the noise training set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from usdehaze.errors import UsageError

METHODS = ("joint", "pigdm", "dps", "flow", "gan", "bm3d", "lasso")
LABELS = {
    "joint": "Ours (joint)",
    "pigdm": "ΠGDM",
    "dps": "DPS",
    "flow": "FLOW",
    "gan": "GAN",
    "bm3d": "BM3D",
    "lasso": "LASSO",
}
SAMPLER_KEYS = {"rule", "steps", "lam", "kappa", "rho", "weighting", "noise_sigma", "start_sigma"}
RULE_KEYS = {"rho", "weighting", "noise_sigma"}  # the rules' parameters (each its own)


@dataclass
class Context:
    """Everything the methods share for one experiment."""

    task: Any  # usdehaze.natural.tasks.Task
    sde: Any
    device: torch.device
    noise_mean: Tensor  # (1, *noise_shape) image
    noise_std: float
    seed: int = 0
    models: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_meas(self) -> Tensor:
        """μ_n in measurement layout (1, ...)."""
        return self.task.to_measurement(self.noise_mean)


def _sampler(ctx: Context, noise: Any, cfg: dict[str, Any], name: str, rule: str) -> Any:
    """The JointSampler a method's config asks for: its rule (``rule`` keys, by name) built on
    the task's operator with the rule's own parameters (``RULE_KEYS``: one it does not declare
    is one line), the sampler with the rest."""
    from usdehaze.core.dc_rules import make_rule
    from usdehaze.core.sampler import JointSampler

    unknown = set(cfg) - SAMPLER_KEYS
    if unknown:
        raise UsageError(
            f"config: key 'methods.{name}.{sorted(unknown)[0]}': unknown (expected {sorted(SAMPLER_KEYS)})"
        )
    kw = {k: v for k, v in cfg.items() if k not in RULE_KEYS and k != "rule"}
    own = {k: v for k, v in cfg.items() if k in RULE_KEYS}
    built = make_rule(cfg.get("rule", rule), ctx.task.operator, **own)
    return JointSampler(ctx.models["prior_signal"], noise, built, ctx.sde, device=ctx.device, **kw)


def run_joint(ctx: Context, y: Tensor, cfg: dict[str, Any], batch_seed: int) -> Tensor:
    from usdehaze.natural.tasks import ReshapedPrior

    noise = ctx.models["prior_noise"]
    if ctx.task.vector_noise:
        noise = ReshapedPrior(noise, ctx.task.noise_shape)
    s = _sampler(ctx, noise, cfg, "joint", "pigdm")
    res = s(y, x_shape=(y.shape[0], *ctx.task.x_shape), seed=batch_seed)
    return res.x.clamp(-1, 1)


def _single(rule: str) -> Callable:
    def run(ctx: Context, y: Tensor, cfg: dict[str, Any], batch_seed: int) -> Tensor:
        cfg = {"noise_sigma": ctx.noise_std, **cfg, "rule": rule}
        yt = y - ctx.task.operator.noise_scale * ctx.mean_meas.to(y)
        s = _sampler(ctx, None, cfg, rule, rule)
        return s(yt, x_shape=(y.shape[0], *ctx.task.x_shape), seed=batch_seed).x.clamp(-1, 1)

    return run


def run_flow(ctx: Context, y: Tensor, cfg: dict[str, Any], batch_seed: int) -> Tensor:
    from usdehaze.natural.baselines.glow import flow_map

    m = dict(cfg.get("map", {}))
    torch.manual_seed(batch_seed)
    return flow_map(
        ctx.models["glow_signal"],
        ctx.models["glow_noise"],
        ctx.task.operator,
        y,
        x_shape=(y.shape[0], *ctx.task.x_shape),
        noise_shape=ctx.task.noise_shape if ctx.task.vector_noise else None,
        steps=int(m.get("steps", 600)),
        lr=float(m.get("lr", 0.005)),
        lam=float(m.get("lam", 0.03)),
        init=m.get("init", "zeros"),
    )


def run_gan(ctx: Context, y: Tensor, cfg: dict[str, Any], batch_seed: int) -> Tensor:
    from usdehaze.natural.baselines.gan import csgm

    c = dict(cfg.get("csgm", {}))
    return csgm(
        ctx.models["gan"],
        ctx.task.operator,
        y,
        ctx.mean_meas.to(y),
        steps=int(c.get("steps", 600)),
        lr=float(c.get("lr", 0.05)),
        lam=float(c.get("lam", 0.1)),
        restarts=int(c.get("restarts", 1)),
        seed=batch_seed,
    )


def run_bm3d(ctx: Context, y: Tensor, cfg: dict[str, Any], batch_seed: int) -> Tensor:
    from usdehaze.natural.baselines.classical import bm3d_denoise

    return bm3d_denoise(ctx.task.operator, y.cpu(), ctx.mean_meas, ctx.noise_std, cfg.get("sigma"))


def run_lasso(ctx: Context, y: Tensor, cfg: dict[str, Any], batch_seed: int) -> Tensor:
    from usdehaze.natural.baselines.classical import lasso_wavelet

    return lasso_wavelet(
        ctx.task.operator,
        y.cpu(),
        (y.shape[0], *ctx.task.x_shape),
        ctx.mean_meas,
        lam=float(cfg.get("lam", 0.01)),
        iters=int(cfg.get("iters", 200)),
        wavelet=cfg.get("wavelet", "db4"),
    )


RUNNERS: dict[str, Callable] = {
    "joint": run_joint,
    "pigdm": _single("pigdm"),
    "dps": _single("dps"),
    "flow": run_flow,
    "gan": run_gan,
    "bm3d": run_bm3d,
    "lasso": run_lasso,
}
