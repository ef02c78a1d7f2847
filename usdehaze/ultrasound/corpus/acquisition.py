"""Acquisitions: phased-array probe, transmit, receive apodisation, sector, depth and image grid.

An :class:`Acquisition` is everything about how a scan was made that changes the look of its
speckle and haze; :func:`draw_acquisition` samples the training range, :data:`VALIDATION`
holds the acquisitions the training split never uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SOUND_SPEED = 1540.0


@dataclass(frozen=True)
class Acquisition:
    """One phased-array acquisition on a native polar grid (depth r × beam angle θ)."""

    name: str
    fc: float  # centre frequency, Hz
    n_elements: int
    pitch: float  # m
    bandwidth: float  # pulse-echo fractional bandwidth, %
    sector_deg: float  # full sector opening
    r_min: float  # m
    r_max: float  # m
    transmit: str  # "diverging" (one wave covering the sector) or "focused" (line by line)
    focus: float  # m, focal depth of a focused transmit (unused for diverging)
    rx_apodisation: str  # "none" or "hann" (fixed window over the receive aperture)
    attenuation: float  # dB/cm/MHz
    shape: tuple[int, int]  # (n_r, n_theta) grid

    @property
    def wavelength(self) -> float:
        return SOUND_SPEED / self.fc

    @property
    def half_angle(self) -> float:
        return float(np.deg2rad(self.sector_deg) / 2)

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Depth (m) and angle (rad) axes of the image grid."""
        r = np.linspace(self.r_min, self.r_max, self.shape[0])
        th = np.linspace(-self.half_angle, self.half_angle, self.shape[1])
        return r, th

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Cartesian pixel positions x, z (m), each of shape ``shape``."""
        r, th = self.axes()
        rr, tt = np.meshgrid(r, th, indexing="ij")
        return rr * np.sin(tt), rr * np.cos(tt)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Acquisition:
        """From to_dict's form; a full-wave shard's own record of its solver (``fullwave``,
        pipelines/make_fullwave.py) is not the probe's and is left out."""
        kept = {k: v for k, v in d.items() if k != "fullwave"}
        return cls(**{**kept, "shape": tuple(d["shape"])})


def _phased_pitch(fc: float, rng: np.random.Generator) -> float:
    """Phased arrays are pitched near half a wavelength (0.45–0.6 λ), avoiding grating lobes."""
    return float(rng.uniform(0.45, 0.6) * SOUND_SPEED / fc)


# Acquisitions kept for validation: never drawn for training (see draw_acquisition).
VALIDATION: tuple[Acquisition, ...] = (
    # A P4-2v-like probe: 2.72 MHz, 64 elements, one 60° diverging wave, Hann receive apodisation.
    Acquisition(
        "val_p4_diverging",
        2.72e6,
        64,
        3.0e-4,
        74.0,
        60.0,
        0.01,
        0.12,
        "diverging",
        0.0,
        "hann",
        0.5,
        (256, 128),
    ),
    # A P6-3-like probe: 4.5 MHz, 64 elements, focused line-by-line transmit, full aperture.
    Acquisition(
        "val_p6_focused",
        4.5e6,
        64,
        2.18e-4,
        67.0,
        75.0,
        0.01,
        0.13,
        "focused",
        0.07,
        "none",
        0.5,
        (288, 144),
    ),
)


def too_close_to_validation(fc: float, n_elements: int, transmit: str) -> bool:
    """A training draw may not resemble a validation acquisition (same transmit, ±12 % fc,
    same element count): what validation measures is generalisation, not fit."""
    return any(
        v.transmit == transmit and v.n_elements == n_elements and abs(fc / v.fc - 1) < 0.12
        for v in VALIDATION
    )


def draw_acquisition(rng: np.random.Generator, name: str) -> Acquisition:
    """A random training acquisition: 2–5 MHz, 64–128 elements, 60–90° sectors, 100–160 mm."""
    while True:
        fc = float(rng.uniform(2.0e6, 5.0e6))
        n_el = int(rng.choice([64, 80, 96, 128]))
        transmit = str(rng.choice(["diverging", "focused"]))
        if not too_close_to_validation(fc, n_el, transmit):
            break
    depth = float(rng.uniform(0.10, 0.16))
    sector = float(rng.uniform(60.0, 90.0))
    n_r = int(rng.choice([192, 224, 256, 288, 320]))
    n_th = int(rng.choice([96, 112, 128, 144, 160]))
    return Acquisition(
        name=name,
        fc=fc,
        n_elements=n_el,
        pitch=_phased_pitch(fc, rng),
        bandwidth=float(rng.uniform(55.0, 90.0)),
        sector_deg=sector,
        r_min=float(rng.uniform(0.005, 0.015)),
        r_max=depth,
        transmit=transmit,
        focus=float(rng.uniform(0.05, 0.10)),
        rx_apodisation=str(rng.choice(["none", "hann"])),
        attenuation=float(rng.uniform(0.3, 0.7)),
        shape=(n_r, n_th),
    )
