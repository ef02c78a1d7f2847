"""Apical cardiac phantoms for the full-wave solver: density maps of two media per frame.

The heart is the corpus's random apical view (``corpus.anatomy.draw_anatomy``, on the scan's
polar grid, so the masks are the corpus's masks), turned into a medium: each grid cell's density
fluctuates at random (scatterers below the resolution) with a standard deviation proportional to
the anatomy's echogenicity, the blood pools hardly at all. Over it lies a chest wall of layers
(skin, fat, fascia, muscle, fascia) under 1 mm of gel, with rough boundaries, each layer with the
acoustic impedance of its tissue and its own echogenicity.

Two media per frame: **hazy**, the layers with their impedances, and **tissue**, the layers at
the background's impedance (the same scatterers). The sound speed is the background's
everywhere and the impedance steps are carried by density alone: at 4 cells per wavelength the
pseudo-spectral scheme gets a density step's reflection right to within a smooth low-pass
(0.8× the nominal coefficient at fc, measured, converging with finer grids) but a speed step's
up to 1.6× wrong, which would leave echoes of the layers in the tissue-only medium. So every
echo arrives at the same time in both media and only the reverberating impedance steps differ;
refraction and aberration by the layers' speeds are left out (docs/fullwave.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d, map_coordinates

from usdehaze.ultrasound.corpus.anatomy import draw_anatomy
from usdehaze.ultrasound.fullwave.scan import C0, RHO0, Setup, face_density

# (name, speed m/s range, density kg/m³ range, thickness m range, echogenicity)
LAYERS = (
    ("skin", (1590, 1640), (1080, 1120), (0.0015, 0.0025), 0.6),
    ("fat", (1430, 1470), (920, 960), (0.003, 0.008), 0.2),
    ("fascia", (1600, 1680), (1150, 1300), (0.0006, 0.0012), 0.8),
    ("muscle", (1560, 1600), (1050, 1090), (0.005, 0.012), 0.5),
    ("fascia", (1600, 1680), (1150, 1300), (0.0006, 0.0012), 0.8),
)
GEL = 0.001  # coupling gel under the probe (background medium), m
FACE_REFLECTIONS = (0.4, 0.6)  # probe-face pressure reflection coefficients drawn from


@dataclass
class Phantom:
    """Hazy and tissue-only media of one frame (density; speed C0 everywhere), masks, settings."""

    rho_hazy: np.ndarray
    rho_tissue: np.ndarray
    face: float  # probe-face reflection coefficient
    cavity: np.ndarray  # polar masks (the scan's image grid)
    myocardium: np.ndarray
    tissue: np.ndarray
    params: dict = field(default_factory=dict)


def _polar_to_grid(setup: Setup, img: np.ndarray) -> np.ndarray:
    """A polar image (n_r, n_θ) sampled at every grid cell (nearest value beyond its edges)."""
    r_ax, th_ax = setup.acquisition().axes()
    x, z = setup.axes()
    xx, zz = np.meshgrid(x, z)
    r, th = np.hypot(xx, zz), np.arctan2(xx, np.maximum(zz, 1e-9))
    ir = (r - r_ax[0]) / (r_ax[1] - r_ax[0])
    it = (th - th_ax[0]) / (th_ax[1] - th_ax[0])
    return map_coordinates(img, [ir, it], order=1, mode="nearest")


def chest_wall(setup: Setup, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Layer index per grid cell (−1 outside the chest wall) and the drawn layers, under 1 mm of
    gel (the background medium, so that the wave along the array is the empty medium's); each boundary
    rough (a smooth random depth profile of 0.2–0.8 mm r.m.s. along x)."""
    x, z = setup.axes()
    index = np.full((len(z), len(x)), -1, np.int16)
    depth = np.full(len(x), GEL)
    layers = []
    bound = [depth.copy()]
    for name, cr, rr, tr, echo in LAYERS:
        thick = rng.uniform(*tr)
        rough = gaussian_filter1d(rng.standard_normal(len(x)), 0.004 / setup.dx, mode="nearest")
        rough *= rng.uniform(0.2, 0.8) * 1e-3 / (rough.std() + 1e-12)
        depth = np.maximum(depth + thick + rough - rough.mean(), depth + 0.3 * thick)
        bound.append(depth.copy())
        layers.append(
            {
                "name": name,
                "c": float(rng.uniform(*cr)),
                "rho": float(rng.uniform(*rr)),
                "thickness": thick,
                "echogenicity": echo,
            }
        )
    zz = z[:, None]
    for k in range(len(LAYERS)):
        index[(zz >= bound[k][None, :]) & (zz < bound[k + 1][None, :])] = k
    return index, layers


def draw_phantom(
    setup: Setup, rng: np.random.Generator, scatter: float = 0.02, face: float | None = None
) -> Phantom:
    """One frame's media: the corpus anatomy as scatterers under a random chest wall.
    ``scatter``: density fluctuation (r.m.s. fraction of ρ₀) of echogenicity 1."""
    acq = setup.acquisition()
    anat = draw_anatomy(acq, rng)
    p = anat.params
    # the anatomy's own chest-wall band is replaced by the layers below: take it out
    px, pz = acq.grid()
    r = np.hypot(px, pz)
    cd = p["chest_depth"]
    band = p["chest_wall"] * np.exp(-(((r - cd) / (0.35 * cd)) ** 2))
    amp = anat.amplitude - gaussian_filter(band.astype(np.float32), 0.6)
    amp = np.maximum(amp, 0.0) + np.abs(anat.specular) * 0.3
    echo = _polar_to_grid(setup, amp)
    layer, layers = chest_wall(setup, rng)
    x, z = setup.axes()
    rho_h = np.full(echo.shape, RHO0)
    het = np.exp(0.3 * rng.standard_normal(len(layers)))
    for k, lay in enumerate(layers):
        m = layer == k
        rho_h[m] = lay["rho"] * lay["c"] / C0  # the tissue's impedance, at the speed C0
        echo[m] = lay["echogenicity"] * het[k]
    echo[z < 0] = 0.0
    rho_t = np.full(echo.shape, RHO0)  # the layers at the background's impedance
    # scatterers: the same random density fluctuation in both media (multiplicative)
    fl = 1 + scatter * echo * rng.standard_normal(echo.shape)
    rho_h, rho_t = rho_h * fl, rho_t * fl
    face = float(rng.choice(FACE_REFLECTIONS)) if face is None else float(face)
    above = z < 0
    for rho in (rho_h, rho_t):
        rho[above] = face_density(face)
    chest = GEL + float(sum(lay["thickness"] for lay in layers))
    tissue = (amp > 0.05) & (r > chest + 0.003)
    params = {
        "anatomy": {k: (v if isinstance(v, bool | str) else float(v)) for k, v in p.items()},
        "layers": layers,
        "chest_wall_thickness": chest,
        "face_reflection": face,
        "scatter": scatter,
    }
    return Phantom(rho_h, rho_t, face, anat.cavity, anat.myocardium, tissue, params)


def empty_medium(setup: Setup, face: float) -> np.ndarray:
    """Density of the background with only the probe face: the medium of the incident field."""
    g = setup.grid
    _, z = setup.axes()
    rho = np.full((g.nz, g.nx), RHO0)
    rho[z < 0] = face_density(face)
    return rho
