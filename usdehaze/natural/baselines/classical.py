"""Non-learned baselines: BM3D for denoising, LASSO in a wavelet basis (FISTA) for any linear A.

Neither models the structured noise: both get its first two moments (mean image μ_n and a
scalar std σ_n, a Gaussian noise model), the same information the single-prior diffusion
baselines get. Images are (B, C, H, W) tensors in [-1, 1]; operators are the core's.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from usdehaze.errors import UsageError


def pseudo_inverse_blend(op, y: Tensor, noise_mean: Tensor | float = 0.0) -> tuple[Tensor, float]:
    """x̃ = (y − α μ_n)/β for A = β·I (Identity: β = 1) and the factor α/β the noise std scales by."""
    beta = getattr(op, "beta", 1.0) if type(op).__name__ in ("ScaledBlend", "Identity") else None
    if beta is None:
        raise UsageError(
            f"bm3d: needs a denoising task (identity or blend operator), got {type(op).__name__}"
        )
    alpha = getattr(op, "noise_scale", 1.0)
    return (y - alpha * noise_mean) / beta, alpha / beta


def bm3d_denoise(
    op, y: Tensor, noise_mean: Tensor | float, noise_std: float, sigma: float | None = None
) -> Tensor:
    """BM3D on the pseudo-inverse; ``sigma`` (in [-1, 1] units) defaults to the noise std mapped
    through it. Colour images use BM3D's opponent-colour variant."""
    import bm3d

    xt, gain = pseudo_inverse_blend(op, y, noise_mean)
    sig = gain * noise_std if sigma is None else float(sigma)
    out = []
    for img in xt.detach().cpu().numpy():
        z = (img.transpose(1, 2, 0) + 1.0) / 2.0  # [0, 1] for BM3D's profiles
        s = max(sig / 2.0, 1e-3)
        if z.shape[2] == 3:
            den = bm3d.bm3d_rgb(z, s)
        else:
            den = bm3d.bm3d(z[..., 0], s)[..., None]
        out.append(np.asarray(den, np.float32).transpose(2, 0, 1) * 2.0 - 1.0)
    return torch.from_numpy(np.stack(out)).clamp(-1, 1).to(y)


# -- LASSO in an orthonormal wavelet basis ----------------------------------------------------
class Wavelet:
    """Orthonormal 2D wavelet transform per channel (periodised), flattened to one vector."""

    def __init__(
        self, shape: tuple[int, int, int], wavelet: str = "db4", level: int | None = None
    ) -> None:
        import pywt

        self.shape, self.wavelet = shape, wavelet
        c, h, w = shape
        max_level = pywt.dwtn_max_level((h, w), wavelet)
        self.level = max(1, min(level or max_level, max_level))
        coeffs = pywt.wavedec2(np.zeros((h, w)), wavelet, mode="periodization", level=self.level)
        arr, self.slices = pywt.coeffs_to_array(coeffs)
        self.coef_shape = arr.shape
        ah, aw = coeffs[0].shape
        self.approx = np.zeros(arr.shape, bool)
        self.approx[:ah, :aw] = True  # the coarse approximation is not penalised

    def forward(self, x: np.ndarray) -> np.ndarray:
        import pywt

        out = []
        for ch in x:
            arr, _ = pywt.coeffs_to_array(
                pywt.wavedec2(ch, self.wavelet, mode="periodization", level=self.level)
            )
            out.append(arr)
        return np.stack(out)

    def inverse(self, w: np.ndarray) -> np.ndarray:
        import pywt

        out = []
        for arr in w:
            coeffs = pywt.array_to_coeffs(arr, self.slices, output_format="wavedec2")
            out.append(pywt.waverec2(coeffs, self.wavelet, mode="periodization"))
        return np.stack(out)


def operator_norm2(op, shape: tuple[int, ...], iters: int = 30, seed: int = 0) -> float:
    """‖A‖² (largest eigenvalue of AᵀA) by power iteration."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(shape, generator=g)
    lam = 1.0
    for _ in range(iters):
        w = op.A_adjoint(op.A(v))
        lam = float(w.norm() / v.norm().clamp_min(1e-12))
        v = w / w.norm().clamp_min(1e-12)
    return lam


def lasso_wavelet(
    op,
    y: Tensor,
    x_shape: tuple[int, ...],
    noise_mean: Tensor | float = 0.0,
    lam: float = 0.01,
    iters: int = 200,
    wavelet: str = "db4",
) -> Tensor:
    """argmin_w ½‖y − α μ_n − A Wᵀw‖² + λ‖w‖₁ by FISTA (Beck & Teboulle), x = Wᵀw.

    W is orthonormal, so the gradient step is Aᵀ-then-W and the step 1/‖A‖² is safe.
    """
    alpha = getattr(op, "noise_scale", 1.0)
    yt = (y - alpha * noise_mean).detach().cpu().float()
    B = yt.shape[0]
    wav = Wavelet(tuple(x_shape[1:]), wavelet)
    step = 1.0 / operator_norm2(op, (1, *x_shape[1:]))
    thr = lam * step
    w = np.zeros((B, x_shape[1], *wav.coef_shape))
    z, t = w.copy(), 1.0
    pen = ~wav.approx
    for _ in range(iters):
        x = torch.from_numpy(np.stack([wav.inverse(zi) for zi in z])).float()
        grad_x = op.A_adjoint(op.A(x) - yt).numpy()
        v = z - step * np.stack([wav.forward(gi) for gi in grad_x])
        w_new = np.where(pen, np.sign(v) * np.maximum(np.abs(v) - thr, 0.0), v)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = w_new + ((t - 1) / t_new) * (w_new - w)
        w, t = w_new, t_new
    x = np.stack([wav.inverse(wi) for wi in w]).astype(np.float32)
    return torch.from_numpy(x).clamp(-1, 1).to(y.device)
