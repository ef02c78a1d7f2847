"""A scanner's display chain, randomised: how polar envelope dB becomes exported B-mode grey.

Clinical scanners export scan-converted grey levels, not beamformer data. The B-mode priors learn
what tissue and haze look like after such a chain, so the corpus frames go through one drawn per
frame (the same chain for a frame's tissue-only, haze-only and hazy versions):

1. gain (±6 dB) and a smooth time-gain compensation over depth (±4 dB), on polar dB;
2. scan conversion from the acquisition's polar grid to square Cartesian pixels of 0.2–0.5 mm,
   bilinear (usdehaze.ultrasound.geometry), black outside the sector;
3. speckle reduction: none, a 3×3 median or a Gaussian of σ 0.5–1.5 px;
4. edge enhancement: unsharp masking (amount 0–0.5, σ 1.5 px);
5. persistence: the mean of the last 1–3 frames;
6. the grey map: grey = 255·((dB + DR)/DR)^γ over a dynamic range DR of 40–80 dB, γ 0.7–1.4;
7. 8-bit quantisation, then JPEG at quality 50–95 (or none).

With everything off (``DisplayChain.off``) the grey map is usdehaze.ultrasound.display's
linear-in-dB map, exactly. The validation split draws chains of a combination the training never
draws: a 3×3 median filter followed by JPEG (training draws either, never both).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter, median_filter, shift

from usdehaze.ultrasound.geometry import ScanConverter

LEVELS = 255
FILTERS = ("none", "median", "gaussian")
SPLITS = ("train", "val")


@dataclass(frozen=True)
class DisplayChain:
    """One scanner's display settings (see the module docstring for the order they apply in)."""

    dynamic_range: float = 60.0  # dB shown between black and white
    gain_db: float = 0.0
    tgc_db: tuple[float, ...] = ()  # TGC at equally spaced depths (PCHIP between), dB; () = flat
    gamma: float = 1.0  # grey map exponent (1: linear in dB)
    speckle_filter: str = "none"  # none | median (3×3) | gaussian
    speckle_sigma: float = 0.0  # px, for the Gaussian filter
    edge_amount: float = 0.0  # unsharp-mask amount (0: off)
    persistence: int = 1  # frames averaged
    pixel_mm: float | None = None  # Cartesian pixel spacing; None: the converter's default
    jpeg_quality: int | None = None  # None: no JPEG

    @classmethod
    def off(cls, dynamic_range: float = 60.0, pixel_mm: float | None = None) -> DisplayChain:
        """Scan conversion and the linear-in-dB grey map only."""
        return cls(dynamic_range=dynamic_range, pixel_mm=pixel_mm)

    @classmethod
    def draw(cls, rng: np.random.Generator, split: str = "train") -> DisplayChain:
        """A random chain of the training ranges; ``val`` draws the held-out combination
        (3×3 median filter and JPEG, which a training chain never has together)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        dr = float(rng.uniform(40.0, 80.0))
        gain = float(rng.uniform(-6.0, 6.0))
        tgc = tuple(float(v) for v in rng.uniform(-4.0, 4.0, 4))
        gamma = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
        edge = float(rng.uniform(0.0, 0.5)) if rng.random() < 0.6 else 0.0
        persistence = int(rng.integers(1, 4))
        pixel = float(rng.uniform(0.2, 0.5))
        quality = int(rng.integers(50, 96))
        if split == "val":
            filt, sigma = "median", 0.0
        else:
            filt = str(rng.choice(FILTERS))
            sigma = float(rng.uniform(0.5, 1.5)) if filt == "gaussian" else 0.0
            # JPEG in 3 of 4 training chains, never after a median filter (held out for val)
            if filt == "median" or rng.random() < 0.25:
                quality = None
        return cls(dr, gain, tgc, gamma, filt, sigma, edge, persistence, pixel, quality)

    def record(self) -> dict[str, Any]:
        """The settings as JSON-able values (manifests, results)."""
        d = asdict(self)
        d["tgc_db"] = list(self.tgc_db)
        return d

    # -- rendering ----------------------------------------------------------------------------
    def converter(self, geometry: Mapping[str, Any]) -> ScanConverter:
        """The scan converter of a polar grid (``theta``, ``r``, optional ``origin``) at this
        chain's pixel spacing."""
        pixel = None if self.pixel_mm is None else self.pixel_mm * 1e-3
        return ScanConverter.for_axes(
            geometry["theta"], geometry["r"], geometry.get("origin", (0.0, 0.0)), pixel, 4096
        )

    def tgc(self, n_r: int) -> np.ndarray:
        """The TGC curve (dB) over ``n_r`` depth samples: smooth, within the knots' range."""
        if not self.tgc_db:
            return np.zeros(n_r)
        if len(self.tgc_db) == 1:
            return np.full(n_r, self.tgc_db[0])
        from scipy.interpolate import PchipInterpolator

        knots = np.linspace(0.0, 1.0, len(self.tgc_db))
        return PchipInterpolator(knots, np.asarray(self.tgc_db))(np.linspace(0.0, 1.0, n_r))

    def render(
        self,
        db_polar_frames: np.ndarray,
        geometry: Mapping[str, Any],
        converter: ScanConverter | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Consecutive polar dB frames (n, r, θ) (0 dB: the display's full scale before gain)
        → grey frames (n, z, x) uint8 and the sector mask (z, x) bool. ``converter``: this
        chain's converter of ``geometry`` when the caller made it already."""
        db = np.asarray(db_polar_frames, np.float64)
        if db.ndim == 2:
            db = db[None]
        if db.ndim != 3:
            raise ValueError(f"expected polar frames (n, r, theta), got shape {db.shape}")
        dr = self.dynamic_range
        db = db + self.gain_db + self.tgc(db.shape[1])[None, :, None]
        db = np.clip(np.nan_to_num(db, nan=-dr, neginf=-dr, posinf=0.0), -dr, 0.0)
        conv = converter or self.converter(geometry)
        cart = conv(db.astype(np.float32), fill=-dr).astype(np.float64)
        if self.speckle_filter == "median":
            cart = median_filter(cart, size=(1, 3, 3), mode="nearest")
        elif self.speckle_filter == "gaussian":
            s = self.speckle_sigma
            cart = gaussian_filter(cart, (0, s, s), mode="nearest")
        elif self.speckle_filter != "none":
            raise ValueError(
                f"speckle_filter must be one of {FILTERS}, got {self.speckle_filter!r}"
            )
        if self.edge_amount > 0:
            cart = cart + self.edge_amount * (cart - gaussian_filter(cart, (0, 1.5, 1.5)))
        if self.persistence > 1:
            csum = np.cumsum(cart, axis=0)
            k = np.arange(len(cart))
            lo = k - self.persistence  # mean over frames lo+1 .. k
            prev = np.where((lo >= 0)[:, None, None], csum[np.maximum(lo, 0)], 0.0)
            cart = (csum - prev) / np.minimum(k + 1, self.persistence)[:, None, None]
        u = np.clip(cart / dr + 1.0, 0.0, 1.0)
        grey = np.clip(np.rint(u**self.gamma * LEVELS), 0, LEVELS).astype(np.uint8)
        grey[:, ~conv.inside] = 0
        if self.jpeg_quality is not None:
            grey = np.stack([jpeg(g, self.jpeg_quality) for g in grey])
        return grey, conv.inside.copy()


def jpeg(grey: np.ndarray, quality: int) -> np.ndarray:
    """One 8-bit grey frame through baseline JPEG at ``quality`` and back (Pillow)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(grey, np.uint8), mode="L").save(
        buf, format="JPEG", quality=int(quality)
    )
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("L"), np.uint8)


def grey_to_unit(grey: np.ndarray) -> np.ndarray:
    """Grey levels → the B-mode priors' unit range, grey/255·2 − 1 ∈ [-1, 1]: the same as a
    display map's dB normalised over its dynamic range, whatever that dynamic range is."""
    return (np.asarray(grey, np.float32) / LEVELS * 2.0 - 1.0).astype(np.float32)


def motion_offsets(n: int, rng: np.random.Generator, step_px: float = 0.7) -> list[np.ndarray]:
    """Displacements (depth, angle; px) of ``n`` frames standing in for a still corpus frame's
    cine neighbours, which persistence averages: up to ``step_px`` per frame of tissue motion,
    oldest first, the frame itself (no displacement) last."""
    step = rng.uniform(-step_px, step_px, 2)
    return [step * (n - 1 - k) for k in range(n)]


def displace(db: np.ndarray, offsets: list[np.ndarray]) -> np.ndarray:
    """The polar dB frame (r, θ) moved by each offset (px): (len(offsets), r, θ), bilinear,
    edges repeated; apply the same offsets to a frame's tissue, haze and hazy versions."""
    return np.stack([shift(db, m, order=1, mode="nearest") if np.any(m) else db for m in offsets])
