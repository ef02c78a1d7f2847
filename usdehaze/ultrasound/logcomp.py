"""Log compression: envelope, normalisation, dB, dynamic-range clip, [-1, 1] mapping, μ-law.

The one place the project turns IQ into images and back. Conventions:
- ``normalise="frame"`` (default): 0 dB is each frame's maximum envelope; ``"global"``: 0 dB is
  the maximum over all frames given; a float: that envelope value is 0 dB (the reference a
  dehazing run stores so tissue and haze share the input's scale).
- dB images are clipped to [-dynamic_range, 0]; the models see u = 1 + 2·dB/dynamic_range ∈ [-1, 1].
- μ-law: the one definition (``MU``, :func:`mu_law`, :func:`mu_law_inverse`), on numpy arrays and
  on torch tensors alike; the iq data model (usdehaze.ultrasound.measurement.MuLawIQSum) calls it.
- The priors' data domains, as their JSON's ``normalisation.domain`` names them: ``DB`` for
  log-compressed envelopes, ``IQ_MULAW`` for μ-law companded I/Q (named in usdehaze.core.domains).
"""

from __future__ import annotations

import math
import sys

import numpy as np

# the prior domains, named here for the ultrasound code (their one definition is in core)
from usdehaze.core.domains import DB as DB
from usdehaze.core.domains import IQ_MULAW as IQ_MULAW

DEFAULT_DYNAMIC_RANGE = 60.0
MU = 255.0
_TINY = 1e-30


def _is_tensor(x) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch for numpy callers)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def envelope(iq: np.ndarray) -> np.ndarray:
    """Envelope |IQ| as float32 (real input is taken as a magnitude already)."""
    return np.abs(iq).astype(np.float32)


def reference(env: np.ndarray, normalise: str | float | np.ndarray = "frame") -> np.ndarray | float:
    """The envelope value that maps to 0 dB: per frame (frames, 1, 1), global, or given."""
    if isinstance(normalise, (int, float)):
        return float(normalise)
    if isinstance(normalise, np.ndarray):
        return normalise
    if normalise == "global":
        return float(env.max())
    if normalise == "frame":
        return (
            env.reshape(env.shape[0], -1).max(axis=1).reshape(-1, 1, 1)
            if env.ndim == 3
            else float(env.max())
        )
    raise ValueError(f"normalise must be 'frame', 'global' or a number, got {normalise!r}")


def to_db(
    iq: np.ndarray,
    dynamic_range: float = DEFAULT_DYNAMIC_RANGE,
    normalise: str | float | np.ndarray = "frame",
) -> np.ndarray:
    """IQ or envelope (frames, z, x) → dB image clipped to [-dynamic_range, 0], float32."""
    env = envelope(iq)
    ref = reference(env, normalise)
    db = 20 * np.log10(np.maximum(env / np.maximum(ref, _TINY), _TINY))
    return np.clip(db, -dynamic_range, 0).astype(np.float32)


def db_to_envelope(db: np.ndarray) -> np.ndarray:
    """dB image → envelope relative to its 0 dB reference, 10^(dB/20), float32."""
    return (10 ** (np.asarray(db, np.float64) / 20)).astype(np.float32)


def db_to_unit(db: np.ndarray, dynamic_range: float = DEFAULT_DYNAMIC_RANGE) -> np.ndarray:
    """dB ∈ [-DR, 0] → u ∈ [-1, 1] (the models' input range)."""
    return (1 + 2 * np.asarray(db) / dynamic_range).astype(np.float32)


def unit_to_db(u: np.ndarray, dynamic_range: float = DEFAULT_DYNAMIC_RANGE) -> np.ndarray:
    """u ∈ [-1, 1] → dB ∈ [-DR, 0] (values outside are clipped)."""
    return np.clip((np.asarray(u) - 1) * dynamic_range / 2, -dynamic_range, 0).astype(np.float32)


def mu_law(x: np.ndarray, mu: float = MU) -> np.ndarray:
    """μ-law companding sign(x)·ln(1 + μ|x|)/ln(1 + μ) of data scaled to [-1, 1] (divide IQ/RF
    by its max |I|, |Q| first); I and Q are companded separately for complex input. μ = 255 as
    in the follow-up dehazing paper (Stevens et al., IEEE TMI 2024). A torch tensor (real) stays
    a tensor, differentiable."""
    if _is_tensor(x):
        return x.sign() * (mu * x.abs()).log1p() / math.log1p(mu)
    if np.iscomplexobj(x):
        return mu_law(x.real, mu) + 1j * mu_law(x.imag, mu)
    return np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)


def mu_law_inverse(y: np.ndarray, mu: float = MU) -> np.ndarray:
    """Inverse of :func:`mu_law` (numpy arrays, or real torch tensors)."""
    if _is_tensor(y):
        return y.sign() * (y.abs() * math.log1p(mu)).expm1() / mu
    if np.iscomplexobj(y):
        return mu_law_inverse(y.real, mu) + 1j * mu_law_inverse(y.imag, mu)
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def iq_reference(iq: np.ndarray) -> np.ndarray:
    """Per-frame scale of complex IQ (frames, z, x) for μ-law: max(|I|, |Q|), shape (frames, 1, 1)."""
    iq = np.asarray(iq)
    peak = np.maximum(np.abs(iq.real), np.abs(iq.imag)).reshape(iq.shape[0], -1).max(axis=1)
    return np.maximum(peak, _TINY).reshape(-1, 1, 1).astype(np.float32)


def iq_to_mulaw(iq: np.ndarray, ref: np.ndarray | float, mu: float = MU) -> np.ndarray:
    """Complex IQ (frames, z, x) scaled by ``ref`` → μ-law I and Q channels (frames, 2, z, x)
    in [-1, 1], float32: the IQ-domain priors' input (values beyond ``ref`` are clipped)."""
    c = np.clip(np.asarray(iq).real / ref, -1, 1), np.clip(np.asarray(iq).imag / ref, -1, 1)
    return np.stack([mu_law(c[0], mu), mu_law(c[1], mu)], axis=1).astype(np.float32)


def mulaw_to_iq(u: np.ndarray, ref: np.ndarray | float = 1.0, mu: float = MU) -> np.ndarray:
    """Inverse of :func:`iq_to_mulaw`: channels (frames, 2, z, x) → complex64 IQ × ``ref``."""
    u = np.clip(np.asarray(u, np.float64), -1, 1)
    iq = mu_law_inverse(u[:, 0], mu) + 1j * mu_law_inverse(u[:, 1], mu)
    return (iq * ref).astype(np.complex64)
