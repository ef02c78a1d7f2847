"""Priors: anything callable as ``score(x_t, t)`` returning ∇ log p_t(x_t), shaped like x_t.

Two kinds here: analytic Gaussian priors (ground truth for tests) and trained networks with their
weight files (safetensors + a JSON config with a checksum), loaded by :func:`load_prior`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from usdehaze.core.domains import DOMAINS
from usdehaze.core.sde import SDE, sde_from_config
from usdehaze.errors import UsageError, first_line


class Prior(Protocol):
    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor: ...


class GaussianPrior:
    """Score of N(α_t μ, α_t² Σ + β_t² I) for data x_0 ~ N(μ, Σ) (dense Σ, flattened per sample)."""

    def __init__(self, mean: Tensor, cov: Tensor, sde: SDE) -> None:
        self.mean = mean.double().reshape(-1)
        self.cov = cov.double()
        self.sde = sde
        d = self.mean.numel()
        if self.cov.shape != (d, d):
            raise ValueError(f"cov must be ({d}, {d}), got {tuple(self.cov.shape)}")

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        B = x_t.shape[0]
        flat = x_t.reshape(B, -1).double()
        t = t.reshape(-1).double().expand(B)
        out = torch.empty_like(flat)
        eye = torch.eye(self.mean.numel(), dtype=torch.float64, device=x_t.device)
        for tv in torch.unique(t):
            sel = t == tv
            a, b = self.sde.alpha(tv), self.sde.beta(tv)
            cov_t = a * a * self.cov + b * b * eye
            r = flat[sel] - a * self.mean
            out[sel] = -torch.linalg.solve(cov_t, r.T).T
        return out.reshape(x_t.shape).to(x_t.dtype)


class NetworkPrior(nn.Module):
    """A trained ε-network as a score: s(x_t, t) = −ε̂(x_t, α_t, β_t) / β_t."""

    def __init__(self, net: nn.Module, sde: SDE, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.net, self.sde = net, sde
        self.meta = dict(meta or {})

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        t = t.reshape(-1).expand(x_t.shape[0]).double()
        beta = self.sde.beta(t).to(x_t)
        alpha = self.sde.alpha(t).to(x_t)
        return -self.net(x_t, alpha, beta) / beta.reshape(-1, *([1] * (x_t.dim() - 1)))

    @property
    def checksum(self) -> str:
        return self.meta.get("sha256", "")


def accelerate(
    prior: NetworkPrior,
    channels_last: bool = False,
    compile: bool = False,
    cuda_graphs: bool = False,
) -> NetworkPrior:
    """Speed settings for a network prior, in place: NHWC layout, torch.compile, CUDA graphs.

    ``cuda_graphs`` compiles with mode "reduce-overhead": on CUDA the network's forward and backward
    are replayed as CUDA graphs (one launch instead of one per kernel); elsewhere it is a plain
    compile. Samplers see ``prior.cuda_graphs`` and mark each step's start for the graph trees.
    """
    if channels_last:
        prior.net.to(memory_format=torch.channels_last)
    if compile or cuda_graphs:
        mode = "reduce-overhead" if cuda_graphs else "default"
        prior.net = torch.compile(prior.net, dynamic=False, mode=mode)
    prior.cuda_graphs = bool(cuda_graphs)
    return prior


@dataclass(frozen=True)
class DenoisingCheck:
    """How one prior denoises data x at one noise level σ (see :func:`denoising_check`)."""

    sigma: float
    error: float  # mean (ε̂ − ε)² per element: the normalised Tweedie error ‖D(x_σ) − x‖²/σ² (VE)
    ratio: float  # ⟨ε̂, ε⟩ / ‖ε̂‖²: 1 when D is the posterior mean of the data's own distribution

    @property
    def log_ratio(self) -> float:
        """ln(ratio): 0 for data the prior explains; +inf when ε̂ does not correlate with ε."""
        return math.log(self.ratio) if self.ratio > 0 else math.inf


def denoising_check(
    prior: Prior, x: Tensor, sigmas: Sequence[float], seed: int = 0
) -> list[DenoisingCheck]:
    """Noise data ``x`` to x_σ = α x + σ ε at each marginal std σ and compare the prior's noise
    estimate ε̂ = −σ s(x_σ) with ε: one network evaluation per σ, no gradients.

    For data drawn from the prior's own distribution ε̂ is E[ε | x_σ], so the error ε − ε̂ is
    orthogonal to ε̂ and ``ratio`` is 1 (Stein's identity: Tweedie's posterior covariance is
    consistent with the error it makes); data the prior does not explain pulls it away from 1
    either way. The noise comes from a CPU generator seeded ``seed``: the same on every device.
    """
    sde = prior.sde  # type: ignore[attr-defined]
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    with torch.no_grad():
        for sigma in sigmas:
            t = torch.tensor(sde.t_of_beta(float(sigma)), dtype=torch.float64)
            a = float(sde.alpha(t))
            eps = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x)
            eps_hat = -float(sigma) * prior(a * x + float(sigma) * eps, t.to(x.device))
            e, h = eps.double(), eps_hat.double()
            hh = float((h * h).sum())
            out.append(
                DenoisingCheck(
                    float(sigma),
                    float(((h - e) ** 2).mean()),
                    float((h * e).sum()) / hh if hh > 0 else 0.0,
                )
            )
    return out


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_prior(
    path: str | Path,
    net: nn.Module,
    *,
    network: dict[str, Any],
    sde: SDE,
    normalisation: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write ``NAME.safetensors`` and ``NAME.json`` (architecture, SDE, normalisation, data, checksum).

    Both go to temporaries first and are renamed together with Ctrl-C held, so an interrupted
    save leaves the previous pair, which still loads, never new weights beside an old config."""
    from safetensors.torch import save_file

    from usdehaze import __version__
    from usdehaze.atomic import atomic_path, deferred_interrupts

    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with (
        deferred_interrupts(),
        atomic_path(path) as tmp_weights,
        atomic_path(path.with_suffix(".json")) as tmp_config,
    ):
        save_file(state, str(tmp_weights))
        config = {
            "format": "usdehaze-prior/1",
            "network": network,
            "sde": sde.config(),
            "normalisation": normalisation or {},
            "data": data or {},
            "training": training or {},
            "sha256": sha256(tmp_weights),
            "usdehaze_version": __version__,
        }
        from usdehaze.jsonio import dumps

        tmp_config.write_text(dumps(config, indent=2))  # a NaN (e.g. a loss) is written null
    return path


PRIOR_KEYS = {
    "format",
    "network",
    "sde",
    "normalisation",
    "data",
    "training",
    "sha256",
    "usdehaze_version",
    "ood",
}
FORMAT = "usdehaze-prior/1"


def validate_prior_config(cfg: Any, cfg_path: Path) -> dict[str, Any]:
    """Check every field of a prior's JSON (the file can be anyone's): one UsageError naming the
    file and the key for the first thing wrong. Returns ``cfg``."""

    def where(key: str) -> str:
        return f"{cfg_path}: key '{key}'"

    if not isinstance(cfg, dict):
        raise UsageError(
            f"{cfg_path}: expected a JSON object (a prior config), got {type(cfg).__name__}"
        )
    _check_prior_keys(cfg, where)
    _check_normalisation(cfg.get("normalisation") or {}, where)
    _check_ood(cfg.get("ood") or {}, where)
    return cfg


def _check_prior_keys(cfg: dict[str, Any], where: Callable[[str], str]) -> None:
    """The top level of a prior config: known keys, the required ones, format, checksum, types."""
    unknown = sorted(set(cfg) - PRIOR_KEYS)
    if unknown:
        raise UsageError(
            f"{where(unknown[0])}: unknown in a prior config (expected {sorted(PRIOR_KEYS)})"
        )
    for key in ("network", "sde", "sha256"):
        if key not in cfg:
            raise UsageError(f"{where(key)}: missing from prior config")
    if cfg.get("format", FORMAT) != FORMAT:
        raise UsageError(f"{where('format')}: expected '{FORMAT}', got {cfg['format']!r}")
    digest = cfg["sha256"]
    if not (
        isinstance(digest, str)
        and len(digest) == 64
        and all(c in "0123456789abcdef" for c in digest)
    ):
        raise UsageError(f"{where('sha256')}: expected 64 lowercase hex digits, got {digest!r}")
    for key in ("network", "sde", "normalisation", "data", "training", "ood"):
        if key in cfg and not isinstance(cfg[key], dict):
            raise UsageError(f"{where(key)}: expected an object, got {cfg[key]!r}")
    if "usdehaze_version" in cfg and not isinstance(cfg["usdehaze_version"], str):
        raise UsageError(
            f"{where('usdehaze_version')}: expected a string, got {cfg['usdehaze_version']!r}"
        )


def _check_normalisation(norm: dict[str, Any], where: Callable[[str], str]) -> None:
    """A prior config's ``normalisation``: domain, positive numbers, an increasing range."""
    from usdehaze import limits

    if "domain" in norm and norm["domain"] not in DOMAINS:
        raise UsageError(
            f"{where('normalisation.domain')}: expected one of {', '.join(DOMAINS)}, got {norm['domain']!r}"
        )
    for key in ("dynamic_range", "mu"):
        if key in norm:
            limits.number(norm[key], where(f"normalisation.{key}"), positive=True)
    if "range" in norm:
        r = norm["range"]
        if not (isinstance(r, list) and len(r) == 2):
            raise UsageError(f"{where('normalisation.range')}: expected [low, high], got {r!r}")
        lo = limits.number(r[0], where("normalisation.range[0]"))
        hi = limits.number(r[1], where("normalisation.range[1]"))
        if not lo < hi:
            raise UsageError(f"{where('normalisation.range')}: expected low < high, got {r!r}")
    for key in ("reference",):
        if key in norm and not isinstance(norm[key], str):
            raise UsageError(
                f"{where(f'normalisation.{key}')}: expected a string, got {norm[key]!r}"
            )


def _check_ood(ood: dict[str, Any], where: Callable[[str], str]) -> None:
    """A prior config's ``ood`` calibration: a number threshold, a named measure."""
    from usdehaze import limits

    if "threshold" in ood:
        limits.number(ood["threshold"], where("ood.threshold"))  # below 0: always warn
    if "measure" in ood and not isinstance(ood["measure"], str):
        raise UsageError(f"{where('ood.measure')}: expected a string, got {ood['measure']!r}")


def weights_bytes_limit(net: nn.Module) -> int:
    """Most bytes a safetensors file of ``net``'s weights can take: 8 per value (float64) for
    parameters and buffers, plus 1 MiB for the header."""
    values = sum(t.numel() for t in net.state_dict().values())
    return 8 * values + (1 << 20)


def load_prior(path: str | Path, device: str | torch.device = "cpu") -> NetworkPrior:
    """Load a prior from ``NAME.safetensors`` (+ ``NAME.json`` beside it); the checksum is
    verified and every field of the JSON and every weight (finite) is checked.

    Safetensors only: a pickle (``.pt``, ``.pth``, ``.ckpt``) could run code, so it is refused;
    export a training checkpoint first with ``usdehaze train CONFIG --export-only``."""
    from safetensors.torch import load_file

    from usdehaze.core.networks import build_network
    from usdehaze.jsonio import read_json
    from usdehaze.limits import MAX_PRIOR_JSON_BYTES, bounded_file, not_special

    path = Path(path)
    if path.suffix not in ("", ".safetensors", ".json"):
        raise UsageError(
            f"{path}: a prior must be NAME.safetensors with NAME.json beside it (pickled weights "
            f"such as .pt could run code); export a training checkpoint with usdehaze train CONFIG --export-only"
        )
    weights = path.with_suffix(".safetensors")
    cfg_path = path.with_suffix(".json")
    for p, what in ((weights, "weights (.safetensors)"), (cfg_path, "config (.json)")):
        not_special(p, f"prior {what}")
        if not p.is_file():
            raise UsageError(f"{p}: missing prior {what}")
    cfg = validate_prior_config(read_json(cfg_path, "prior config", MAX_PRIOR_JSON_BYTES), cfg_path)
    sde = sde_from_config(cfg["sde"], f"{cfg_path}: key 'sde'")
    net = build_network(cfg["network"], f"{cfg_path}: key 'network'")
    # the network fixes the weights' size: a larger (say sparse, 64 GiB) file is refused unread
    bounded_file(weights, "prior weights file", weights_bytes_limit(net))
    digest = sha256(weights)
    if digest != cfg["sha256"]:
        raise UsageError(
            f"{weights}: checksum {digest[:12]}… does not match the config's {cfg['sha256'][:12]}… (corrupt or replaced weights)"
        )
    try:
        state = load_file(str(weights))
        net.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any mismatch is a user-facing file problem
        raise UsageError(
            f"{weights}: weights do not fit the network in {cfg_path.name} ({first_line(exc)})"
        ) from None
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UsageError(f"{weights}: key '{name}': weights contain NaN or Inf values")
    prior = NetworkPrior(net, sde, {**cfg, "path": str(weights)}).to(device).eval()
    probe_prior(prior, cfg["network"], str(weights))
    return prior


def probe_prior(prior: NetworkPrior, network: dict[str, Any], source: str) -> None:
    """One ε estimate on pure noise x_t = β_t ε at three noise levels (a 16×16 image, or the
    MLP's vector): finite weights scaled out of range are refused at load, not as NaN results."""
    from usdehaze.core.probe import PROBE_SIZE, check_forward, probe_input

    device = next(prior.net.parameters(), torch.empty(0)).device
    channels = int(prior.net.channels)
    shape = (3, channels) if network.get("arch") == "mlp" else (3, channels, PROBE_SIZE, PROBE_SIZE)
    t = torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64, device=device)
    alpha, beta = prior.sde.alpha(t), prior.sde.beta(t)
    x = probe_input(shape, device) * beta.reshape(-1, *[1] * (len(shape) - 1)).float()
    check_forward(lambda: prior.net(x, alpha, beta), source)
