"""A phased-array scan simulated with the full-wave solver: probe, transmit, receive, DAS.

A linear array of ``n_elements`` lies on one grid row at the top of the domain, under a probe
face (a half-space of higher impedance above the elements: the element stack and lens reflect
what comes back, which is what makes reverberation between the probe and the chest wall). One
diverging wave (a virtual source behind the array covering the sector) is sent, the pressure is
recorded on the elements, the incident field (the same scan of an empty medium with the same
probe face) is subtracted, and the channels are demodulated to I/Q and delay-and-sum
beamformed onto the polar grid (depth × angle) of a corpus ``Acquisition``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from usdehaze.ultrasound.corpus.acquisition import Acquisition
from usdehaze.ultrasound.fullwave.solver import Grid, simulate

C0 = 1540.0  # background sound speed (m/s), the beamformer's too
RHO0 = 1000.0  # background density (kg/m³)


def _fft_size(n: int) -> int:
    """The smallest even n' ≥ n with no prime factor above 5 (fast FFTs: 498 → 500)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1 and n % 2 == 0:
            return n
        n += 1


@dataclass(frozen=True)
class Setup:
    """Probe, transmit, image grid and simulation grid of one full-wave scan."""

    fc: float = 2.0e6  # Hz
    ppw: float = 4.0  # grid cells per wavelength at fc (pseudo-spectral: 2 is the limit)
    n_elements: int = 64
    pitch_cells: int = 2  # element pitch in cells (λ/2 at ppw 4)
    bandwidth: float = 0.7  # one-way fractional bandwidth of the transmitted pulse (−6 dB)
    sector_deg: float = 60.0
    r_min: float = 0.01
    r_max: float = 0.08
    shape: tuple[int, int] = (256, 128)  # image grid: depth samples × beams
    cfl: float = 0.4  # C0·Δt/Δx (a density-only medium of ±30 % is stable to 0.7)
    pml: int = 20
    face_cells: int = 6  # probe face above the element row, inside the domain
    margin: float = 0.004  # medium beyond the sector's edge and depth (m)
    attenuation: float = 0.5  # dB/cm/MHz, applied at fc (frequency-independent)

    @property
    def dx(self) -> float:
        return C0 / self.fc / self.ppw

    @property
    def pitch(self) -> float:
        return self.pitch_cells * self.dx

    @property
    def half_angle(self) -> float:
        return float(np.deg2rad(self.sector_deg) / 2)

    @property
    def alpha_np_m(self) -> float:
        """Amplitude loss at fc, Np/m."""
        return self.attenuation * (self.fc / 1e6) * 100.0 / (20 * np.log10(np.e))

    @cached_property
    def grid(self) -> Grid:
        """The simulation grid: sector width and depth plus margins and the PML."""
        half = self.r_max * np.sin(self.half_angle) + self.margin
        nx = _fft_size(2 * int(np.ceil(half / self.dx)) + 2 * self.pml)
        nz = _fft_size(self.row + int(np.ceil((self.r_max + self.margin) / self.dx)) + self.pml)
        return Grid(nz, nx, self.dx, self.cfl * self.dx / C0)

    @property
    def row(self) -> int:
        """The grid row of the elements."""
        return self.pml + self.face_cells

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Lateral x and depth z (m) of the grid's cells, z = 0 on the element row."""
        g = self.grid
        x = (np.arange(g.nx) - g.nx // 2) * self.dx
        z = (np.arange(g.nz) - self.row) * self.dx
        return x, z

    def element_cells(self) -> np.ndarray:
        """Columns of each element's cells, (n_elements, pitch_cells)."""
        first = self.grid.nx // 2 - self.n_elements * self.pitch_cells // 2
        cols = first + np.arange(self.n_elements * self.pitch_cells)
        return cols.reshape(self.n_elements, self.pitch_cells)

    def element_x(self) -> np.ndarray:
        """Element centres (m)."""
        x, _ = self.axes()
        return x[self.element_cells()].mean(axis=1)

    @property
    def virtual_source(self) -> float:
        """Depth (m, behind the array) of the diverging wave's virtual source: the aperture
        subtends the sector from there."""
        aperture = self.n_elements * self.pitch
        return aperture / 2 / np.tan(self.half_angle)

    def tx_delays(self) -> np.ndarray:
        """Transmit delays (s) of the diverging wave; the centre fires first."""
        zv, xe = self.virtual_source, self.element_x()
        return (np.hypot(xe, zv) - zv) / C0

    @property
    def pulse_sigma(self) -> float:
        """Gaussian envelope width τ (s) of exp(−(t/τ)²) for the one-way bandwidth."""
        return 2 * np.sqrt(np.log(2)) / (np.pi * self.bandwidth * self.fc)

    @property
    def pulse_t0(self) -> float:
        """Time (s) of the pulse's peak after an element starts firing."""
        return 3.0 * self.pulse_sigma

    def pulse(self, t: np.ndarray) -> np.ndarray:
        """The transmitted pressure pulse: a Gaussian-windowed sine at fc, peak at pulse_t0."""
        s = t - self.pulse_t0
        return np.sin(2 * np.pi * self.fc * s) * np.exp(-((s / self.pulse_sigma) ** 2))

    @property
    def nt(self) -> int:
        """Time steps: echoes from the deepest pixel reach the farthest element, plus margin."""
        aperture = self.n_elements * self.pitch
        t = (2 * self.r_max + aperture / 2) / C0 + 2 * self.pulse_t0 + 1e-6
        return int(np.ceil((t + self.tx_delays().max()) / self.grid.dt))

    def acquisition(self) -> Acquisition:
        """The corpus acquisition whose polar image grid this scan is beamformed onto."""
        return Acquisition(
            name="fullwave_p2",
            fc=self.fc,
            n_elements=self.n_elements,
            pitch=self.pitch,
            bandwidth=100 * self.bandwidth / np.sqrt(2),  # pulse-echo
            sector_deg=self.sector_deg,
            r_min=self.r_min,
            r_max=self.r_max,
            transmit="diverging",
            focus=0.0,
            rx_apodisation="hann",
            attenuation=self.attenuation,
            shape=self.shape,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        g = self.grid
        d |= {"dx": self.dx, "dt": g.dt, "nz": g.nz, "nx": g.nx, "nt": self.nt}
        return d


def face_density(reflection: float) -> float:
    """Density of the probe face (same speed as the background) whose normal-incidence
    pressure reflection coefficient seen from the medium is ``reflection``."""
    return RHO0 * (1 + reflection) / (1 - reflection)


def channels(setup: Setup, rho: np.ndarray) -> np.ndarray:
    """RF channel signals (B, nt, n_elements) of media of densities ``rho`` (B, nz, nx) and the
    speed C0: one diverging-wave transmit from every element, the pressure averaged over each
    element's cells."""
    cells = setup.element_cells()
    rows = np.full(cells.size, setup.row)
    cols = cells.ravel()
    t = np.arange(setup.nt) * setup.grid.dt
    delays = np.repeat(setup.tx_delays(), setup.pitch_cells)
    sig = setup.pulse(t[:, None] - delays[None, :])
    rec = simulate(
        setup.grid,
        np.full(np.shape(rho), C0),
        rho,
        (rows, cols),
        sig,
        (rows, cols),
        setup.nt,
        pml_size=setup.pml,
        alpha_np_m=setup.alpha_np_m,
        c0=C0,
        c_ref=C0,
    )
    return rec.reshape(rec.shape[0], rec.shape[1], setup.n_elements, setup.pitch_cells).mean(-1)


def mute(setup: Setup, nt: int, ramp: float = 1e-6) -> np.ndarray:
    """Channel weights (nt, elements): 0 until the transmit has passed the element along the
    array (the latest direct arrival from any element plus the pulse), then a raised-cosine ramp
    to 1 over ``ramp`` seconds. What is left of the direct and lateral (head) waves after the
    incident field is subtracted is muted, as a scanner's receiver is blanked while it fires."""
    xe, d = setup.element_x(), setup.tx_delays()
    direct = (d[:, None] + np.abs(xe[:, None] - xe[None, :]) / C0).max(axis=0)
    start = direct + 2 * setup.pulse_t0
    t = np.arange(nt)[:, None] * setup.grid.dt
    u = np.clip((t - start[None, :]) / ramp, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def to_iq(setup: Setup, rf: np.ndarray) -> np.ndarray:
    """Complex baseband I/Q of RF (…, nt, elements): the analytic signal (positive frequencies
    within fc·(1 ± bandwidth)) mixed down by fc. Sample n is at time n·Δt."""
    nt = rf.shape[-2]
    n = 2 * nt
    f = np.fft.fftfreq(n, setup.grid.dt)
    keep = (f > 0) & (f < setup.fc * (1 + 1.2 * setup.bandwidth))
    spec = np.fft.fft(rf, n=n, axis=-2) * (2.0 * keep)[:, None]
    analytic = np.fft.ifft(spec, axis=-2)[..., :nt, :]
    t = np.arange(nt) * setup.grid.dt
    return analytic * np.exp(-2j * np.pi * setup.fc * t)[:, None]


def das(setup: Setup, iq: np.ndarray) -> np.ndarray:
    """Delay-and-sum of channel I/Q (…, nt, elements) onto the polar image grid (…, n_r, n_θ):
    transmit time from the virtual source, receive time to each element, linear interpolation
    of the baseband, phase restored by exp(2πi fc τ), Hann receive apodisation; the loss
    compensated along the two-way path (an ideal TGC)."""
    acq = setup.acquisition()
    px, pz = acq.grid()
    zv, xe = setup.virtual_source, setup.element_x()
    t_tx = (np.hypot(px, pz + zv) - zv) / C0 + setup.pulse_t0
    t_rx = np.hypot(px[..., None] - xe, pz[..., None]) / C0
    tau = t_tx[..., None] + t_rx  # (n_r, n_θ, elements)
    pos = tau / setup.grid.dt  # sample index (sample n is at n·Δt)
    nt = iq.shape[-2]
    i0 = np.clip(np.floor(pos).astype(int), 0, nt - 2)
    w = np.clip(pos - i0, 0.0, 1.0)
    inside = (pos >= 0) & (pos <= nt - 1)
    el = np.arange(setup.n_elements)
    apod = np.hanning(setup.n_elements + 2)[1:-1]
    val = iq[..., i0, el] * (1 - w) + iq[..., i0 + 1, el] * w
    val = val * (np.exp(2j * np.pi * setup.fc * tau) * apod * inside)
    img = val.sum(-1)
    r = np.hypot(px, pz)
    return img * np.exp(setup.alpha_np_m * 2 * r)
