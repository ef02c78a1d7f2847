"""A 2-D linear acoustic solver: k-space pseudo-spectral, staggered grid, split-field PML.

The first-order equations of linear acoustics in a medium of heterogeneous sound speed c and
density ρ (Treeby & Cox 2010, the scheme of k-Wave's kspaceFirstOrder2D, lossless case):

    ∂u/∂t = −∇p / ρ,   ∂ρ'/∂t = −ρ ∇·u,   p = c² ρ',

with spatial derivatives by FFT on a staggered grid (velocity half a cell off the pressure), the
k-space correction sinc(c_ref k Δt / 2) that makes the time stepping exact in a homogeneous
medium, the acoustic density split into its x and z parts so that a perfectly matched layer
absorbs each direction on its own, and an optional frequency-independent loss (an amplitude
decay exp(−α c₀ t)). Torch on CPU; a batch of media (same grid, same sources) runs in one go.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Grid:
    """A uniform 2-D grid of ``nz`` × ``nx`` cells of ``dx`` metres, time step ``dt`` seconds."""

    nz: int
    nx: int
    dx: float
    dt: float

    def cfl(self, c_max: float) -> float:
        """The Courant number c_max Δt / Δx (the scheme is stable below about 0.5)."""
        return c_max * self.dt / self.dx


def _pml(n: int, size: int, alpha: float, c_ref: float, dx: float, dt: float, stagger: bool):
    """exp(−a(d) Δt/2) over one axis: 1 inside, decaying into the ``size`` cells at both ends
    with a(d) = alpha·c_ref/dx·(d/size)⁴ (d: distance into the layer in cells)."""
    i = np.arange(n, dtype=np.float64) + (0.5 if stagger else 0.0)
    d = np.maximum(np.maximum(size - i, i - (n - 1 - size)), 0.0)
    a = alpha * c_ref / dx * (d / size) ** 4
    return np.exp(-a * dt / 2.0)


def _derivatives(grid: Grid, c_ref: float) -> tuple[torch.Tensor, ...]:
    """The staggered k-space derivative operators (∂z forward, ∂z back, ∂x forward, ∂x back),
    each with the k-space correction sinc(c_ref k Δt / 2) folded in."""
    nz, nx, dx, dt = grid.nz, grid.nx, grid.dx, grid.dt
    kz = 2 * np.pi * np.fft.fftfreq(nz, dx)
    kx = 2 * np.pi * np.fft.rfftfreq(nx, dx)
    k = np.sqrt(kz[:, None] ** 2 + kx[None, :] ** 2)
    kappa = np.sinc(c_ref * k * dt / 2 / np.pi)  # np.sinc(x) = sin(πx)/(πx)
    kz_d, kx_d = kz.copy(), kx.copy()
    if nz % 2 == 0:
        kz_d[nz // 2] = 0.0  # no derivative at the Nyquist frequency (real fields)
    if nx % 2 == 0:
        kx_d[-1] = 0.0

    def op(kd: np.ndarray, sign: float, axis: int) -> torch.Tensor:
        d = 1j * kd * np.exp(sign * 1j * kd * dx / 2)
        d = d[:, None] if axis == 0 else d[None, :]
        return torch.as_tensor((d * kappa).astype(np.complex64))

    return op(kz_d, 1, 0), op(kz_d, -1, 0), op(kx_d, 1, 1), op(kx_d, -1, 1)


def _absorbers(
    grid: Grid,
    pml_size: int | tuple[int, int],
    pml_alpha: float,
    c_ref: float,
    loss: float,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, ...]:
    """The PML factors times the loss, (z, z staggered, x, x staggered), broadcastable."""
    nz, nx, dx, dt = grid.nz, grid.nx, grid.dx, grid.dt
    size_z, size_x = (pml_size, pml_size) if isinstance(pml_size, int) else pml_size

    def pml(n: int, size: int, stagger: bool) -> np.ndarray:
        if size == 0:
            return np.full(n, loss)
        return _pml(n, size, pml_alpha, c_ref, dx, dt, stagger) * loss

    pz, pz_s = (torch.as_tensor(pml(nz, size_z, s)[:, None], dtype=dtype) for s in (False, True))
    px, px_s = (torch.as_tensor(pml(nx, size_x, s)[None, :], dtype=dtype) for s in (False, True))
    return pz, pz_s, px, px_s


def simulate(
    grid: Grid,
    c: np.ndarray,
    rho: np.ndarray,
    src_idx: tuple[np.ndarray, np.ndarray],
    src_signal: np.ndarray,
    rec_idx: tuple[np.ndarray, np.ndarray],
    nt: int,
    pml_size: int | tuple[int, int] = 20,
    pml_alpha: float = 2.0,
    alpha_np_m: float = 0.0,
    c0: float = 1540.0,
    record_every: int = 1,
    c_ref: float | None = None,
) -> np.ndarray:
    """Pressure recorded at ``rec_idx`` (B, nt // record_every, n_rec) for a batch of media.

    ``c``, ``rho``: (B, nz, nx) or (nz, nx); ``src_idx``: (rows, cols) of the source cells;
    ``src_signal``: (nt, n_src), added to the acoustic density as a pressure source at each
    step; ``pml_size``: cells of PML at both ends of each axis,
    or (z, x) (0: periodic along that axis); ``alpha_np_m``: loss in Np/m (amplitude exp(−α c₀ t)). Sample n of the output is the
    pressure of step n, the step that adds the source's sample n (time n·Δt). ``c_ref``: the k-space correction's and the PML's speed (default
    the fastest in the batch); runs whose fields are subtracted must share it.
    """
    c_t = torch.as_tensor(np.asarray(c, np.float64))
    rho_t = torch.as_tensor(np.asarray(rho, np.float64))
    if c_t.ndim == 2:
        c_t, rho_t = c_t[None], rho_t[None]
    if c_t.shape != rho_t.shape or c_t.shape[1:] != (grid.nz, grid.nx):
        raise ValueError(f"simulate: c {tuple(c_t.shape)} and rho {tuple(rho_t.shape)} vs grid")
    c_ref = float(c_t.max()) if c_ref is None else float(c_ref)
    dtype = torch.float32
    ops = _derivatives(grid, c_ref)
    loss = np.exp(-alpha_np_m * c0 * grid.dt / 2.0)  # folded into the PML factors (applied twice)
    pmls = _absorbers(grid, pml_size, pml_alpha, c_ref, loss, dtype)
    return _march(grid, c_t, rho_t, ops, pmls, src_idx, src_signal, rec_idx, nt, record_every)


def _march(
    grid: Grid,
    c_t: torch.Tensor,
    rho_t: torch.Tensor,
    ops: tuple[torch.Tensor, ...],
    pmls: tuple[torch.Tensor, ...],
    src_idx: tuple[np.ndarray, np.ndarray],
    src_signal: np.ndarray,
    rec_idx: tuple[np.ndarray, np.ndarray],
    nt: int,
    record_every: int,
) -> np.ndarray:
    """The time stepping of :func:`simulate`: velocity, split density, pressure; recorded."""
    dz_pos, dz_neg, dx_pos, dx_neg = ops
    pz, pz_s, px, px_s = pmls
    nz, nx, dt = grid.nz, grid.nx, grid.dt
    dtype = torch.float32
    # density on the staggered points: the mean of the two neighbours
    rho_sz = 0.5 * (rho_t + torch.roll(rho_t, -1, dims=1))
    rho_sx = 0.5 * (rho_t + torch.roll(rho_t, -1, dims=2))
    dt_rho_sz = (dt / rho_sz).to(dtype)
    dt_rho_sx = (dt / rho_sx).to(dtype)
    dt_rho0 = (dt * rho_t).to(dtype)
    c2 = (c_t**2).to(dtype)

    b = c_t.shape[0]
    shape = (b, nz, nx)
    uz, ux = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)
    rz, rx = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)
    p = torch.zeros(shape, dtype=dtype)
    si = (torch.as_tensor(src_idx[0]), torch.as_tensor(src_idx[1]))
    ri = (torch.as_tensor(rec_idx[0]), torch.as_tensor(rec_idx[1]))
    # a pressure source enters each split density as s / (2 c²) at the source cells
    src_scale = (0.5 / c2[:, si[0], si[1]]).to(dtype)
    src = torch.as_tensor(np.asarray(src_signal, np.float32))
    n_out = nt // record_every
    out = torch.zeros((b, n_out, len(rec_idx[0])), dtype=dtype)
    fft, ifft = torch.fft.rfft2, torch.fft.irfft2
    s2 = (nz, nx)
    with torch.no_grad():
        for n in range(nt):
            pk = fft(p)
            uz.mul_(pz_s).addcmul_(dt_rho_sz, ifft(pk * dz_pos, s=s2), value=-1.0).mul_(pz_s)
            ux.mul_(px_s).addcmul_(dt_rho_sx, ifft(pk * dx_pos, s=s2), value=-1.0).mul_(px_s)
            rz.mul_(pz).addcmul_(dt_rho0, ifft(fft(uz) * dz_neg, s=s2), value=-1.0).mul_(pz)
            rx.mul_(px).addcmul_(dt_rho0, ifft(fft(ux) * dx_neg, s=s2), value=-1.0).mul_(px)
            if n < len(src):
                add = src[n][None, :] * src_scale
                rz[:, si[0], si[1]] += add
                rx[:, si[0], si[1]] += add
            torch.add(rz, rx, out=p).mul_(c2)
            if (n + 1) % record_every == 0 and n // record_every < n_out:
                out[:, n // record_every] = p[:, ri[0], ri[1]]
    return out.numpy()


def energy(grid: Grid, c: np.ndarray, rho: np.ndarray, p0: np.ndarray, nt: int, **kw) -> np.ndarray:
    """Acoustic energy over time of an initial pressure ``p0`` released at t = 0 (a check on
    stability): Σ p²/(2ρc²) per step, shape (nt,). No PML loss inside, so it must stay bounded."""
    # an initial pressure is a source of one step: released through the density split
    nz, nx = grid.nz, grid.nx
    rows, cols = np.nonzero(np.ones((nz, nx), bool))
    sig = np.asarray(p0, np.float64).ravel()[None, :]  # p = c²·2·s/(2c²) = p0 after one step
    rec = simulate(grid, c, rho, (rows, cols), sig, (rows, cols), nt, **kw)[0]
    return (rec**2 / (2 * np.asarray(rho).ravel() * np.asarray(c).ravel() ** 2)[None, :]).sum(1)
