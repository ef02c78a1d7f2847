"""Structured noise generators: images (digits, characters), sinusoidal-variance Gaussian noise,
rain streaks, and random translations of any of them (the out-of-distribution case).

Every source draws float32 arrays (n, C, H, W) from a ``numpy.random.Generator``, so a seed fixes
the noise. The measurement (blend, additive, compressed sensing) is the task's business.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from usdehaze.errors import UsageError


class NoiseSource(Protocol):
    """Anything that draws noise arrays of a fixed shape (C, H, W)."""

    shape: tuple[int, int, int]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray: ...


class ImageNoise:
    """Noise drawn (with replacement) from an image array, e.g. MNIST digits or TMNIST letters."""

    def __init__(self, images: np.ndarray) -> None:
        if images.ndim != 4 or len(images) == 0:
            raise UsageError(
                f"noise images: expected a non-empty (N, C, H, W) array, got {images.shape}"
            )
        self.images = images.astype(np.float32)
        self.shape = tuple(images.shape[1:])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.images[rng.integers(len(self.images), size=n)].copy()


def sine_profile(length: int, period: float = 16.0) -> np.ndarray:
    """σ_k ∝ exp(sin(2πk/period)) for k = 0 .. length−1, scaled to mean 1."""
    s = np.exp(np.sin(2 * np.pi * np.arange(length) / period))
    return (s / s.mean()).astype(np.float32)


class SineNoise:
    """Gaussian noise with sinusoidal standard deviation σ_k = c·exp(sin(2πk/period)) (paper §6.3).

    ``axis='pixel'``: k runs over the pixels in row-major order (the compressed-sensing case);
    ``axis='row'``: k is the image row (the 2D pattern of the denoising case). ``sigma`` is the
    mean of σ_k over the image (the paper's σ_N = 0.2); channels share the profile.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        sigma: float = 0.2,
        period: float = 16.0,
        axis: str = "pixel",
    ) -> None:
        if axis not in ("pixel", "row"):
            raise UsageError(f"noise: key 'axis': expected 'pixel' or 'row', got {axis!r}")
        if sigma < 0 or period <= 0:
            raise UsageError(
                f"noise: keys 'sigma', 'period': expected sigma >= 0 and period > 0, got {sigma}, {period}"
            )
        self.shape = tuple(int(s) for s in shape)
        self.sigma, self.period, self.axis = float(sigma), float(period), axis
        _, h, w = self.shape
        if axis == "pixel":
            prof = sine_profile(h * w, period).reshape(h, w)
        else:
            prof = np.repeat(sine_profile(h, period)[:, None], w, 1)
        self.std = (self.sigma * prof / prof.mean())[None].astype(np.float32)  # (1, H, W)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((n, *self.shape), dtype=np.float32)
        return z * self.std


def _line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised anti-aliased line of ``length`` pixels at ``angle_deg`` from vertical."""
    r = max(1, int(math.ceil(length / 2)))
    k = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    a = math.radians(angle_deg)
    dy, dx = math.cos(a), math.sin(a)
    for s in np.linspace(-length / 2, length / 2, max(2, int(length * 3))):
        y, x = r + s * dy, r + s * dx
        y0, x0 = int(math.floor(y)), int(math.floor(x))
        fy, fx = y - y0, x - x0
        for yy, xx, wgt in (
            (y0, x0, (1 - fy) * (1 - fx)),
            (y0 + 1, x0, fy * (1 - fx)),
            (y0, x0 + 1, (1 - fy) * fx),
            (y0 + 1, x0 + 1, fy * fx),
        ):
            if 0 <= yy < k.shape[0] and 0 <= xx < k.shape[1]:
                k[yy, xx] += wgt
    return k / k.sum()


class RainNoise:
    """Rain streaks: sparse random drops smeared by an oriented motion blur, in two depth layers.

    Per image: an angle from ``angle`` (degrees from vertical, shared by both layers, small per
    layer jitter), a density (drops per pixel) from ``density``, streak lengths from ``length``
    (fraction of the image side; the far layer is shorter and dimmer). Values are ≥ 0 and reach
    about ``intensity`` on the brightest streaks (additive: y = x + n).
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        density: tuple[float, float] = (0.004, 0.02),
        angle: tuple[float, float] = (-30.0, 30.0),
        length: tuple[float, float] = (0.15, 0.35),
        intensity: float = 0.8,
        width: float = 0.6,
    ) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.density, self.angle, self.length = tuple(density), tuple(angle), tuple(length)
        self.intensity, self.width = float(intensity), float(width)
        for name, rng_ in (
            ("density", self.density),
            ("angle", self.angle),
            ("length", self.length),
        ):
            if len(rng_) != 2 or rng_[0] > rng_[1]:
                raise UsageError(f"noise: key '{name}': expected [low, high], got {list(rng_)}")

    def _one(self, rng: np.random.Generator) -> np.ndarray:
        from scipy.ndimage import convolve, gaussian_filter

        c, h, w = self.shape
        angle = rng.uniform(*self.angle)
        dens = rng.uniform(*self.density)
        out = np.zeros((h, w), np.float32)
        for depth, (scale, bright) in enumerate(((1.0, 1.0), (0.55, 0.6))):
            drops = (rng.random((h, w)) < dens * (1 + depth)).astype(np.float32)
            drops *= rng.uniform(0.5, 1.0, (h, w)).astype(np.float32) * bright
            length = max(2.0, rng.uniform(*self.length) * scale * max(h, w))
            kern = _line_kernel(length, angle + rng.uniform(-3, 3))
            layer = convolve(drops, kern * length**0.5, mode="wrap")
            if self.width > 0:
                layer = gaussian_filter(layer, self.width * scale, mode="wrap")
            out += layer
        out = self.intensity * out / 0.9
        return np.repeat(np.clip(out, 0.0, 1.5 * self.intensity)[None], c, 0)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([self._one(rng) for _ in range(n)]).astype(np.float32)


def translate(img: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """Shift (C, H, W) by (dy, dx) pixels; uncovered pixels take ``fill`` (no wrap-around)."""
    out = np.full_like(img, fill)
    _, h, w = img.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = img[:, ys, xs]
    return out


class Translated:
    """Random translations of another source by up to ``max_shift`` (fraction of the side)."""

    def __init__(
        self, base: NoiseSource, max_shift: float = 0.25, fill: float | None = None
    ) -> None:
        self.base, self.max_shift, self.fill = base, float(max_shift), fill
        self.shape = base.shape

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        x = self.base.sample(n, rng)
        _, h, w = self.shape
        fill = float(x.min()) if self.fill is None else self.fill
        my, mx = int(round(self.max_shift * h)), int(round(self.max_shift * w))
        for i in range(n):
            x[i] = translate(
                x[i], int(rng.integers(-my, my + 1)), int(rng.integers(-mx, mx + 1)), fill
            )
        return x


def build_noise(
    cfg: dict[str, Any],
    shape: tuple[int, int, int],
    images: np.ndarray | None = None,
    source: str = "noise",
) -> NoiseSource:
    """A noise source from a config mapping ``{kind: images|sine|rain, ..., translate: 0.25}``.

    ``images`` (for kind ``images``) are the loaded dataset; ``shape`` is (C, H, W) of the noise.
    """
    kind = cfg.get("kind")
    params = {
        k: v
        for k, v in cfg.items()
        if k not in ("kind", "translate", "train", "test", "train_count")
    }
    try:
        if kind == "images":
            if images is None:
                raise UsageError(f"{source}: key 'train'/'test': kind 'images' needs a dataset")
            src: NoiseSource = ImageNoise(images)
        elif kind == "sine":
            src = SineNoise(shape, **params)
        elif kind == "rain":
            src = RainNoise(shape, **params)
        else:
            raise UsageError(f"{source}: key 'kind': expected images, sine or rain, got {kind!r}")
    except TypeError as exc:
        raise UsageError(f"{source}: {exc}") from None
    shift = cfg.get("translate") or 0
    return Translated(src, float(shift)) if shift else src
