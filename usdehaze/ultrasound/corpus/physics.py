"""PyMUST wrappers: channel signals of point scatterers (SIMUS) and delay-and-sum onto a grid.

Everything that calls pymust lives here, so the rest of the corpus code is plain numpy. SIMUS is
run in 2-D (no elevation), single-threaded BLAS is the caller's business (see
pipelines/make_corpus.py: worker processes with ``OPENBLAS_NUM_THREADS=1``).
"""

from __future__ import annotations

import numpy as np

from usdehaze.ultrasound.corpus.acquisition import SOUND_SPEED, Acquisition

# RF sampling: four times the centre frequency, as SIMUS does by default.
FS_PER_FC = 4.0


def pymust():
    """The pymust module, or a clear error naming the extra that installs it."""
    try:
        import pymust as pm
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("the corpus needs pymust: pip install 'usdehaze[sim]'") from e
    return pm


def param(acq: Acquisition):
    """A pymust parameter structure for the acquisition's probe and medium."""
    pm = pymust()
    p = pm.utils.Param()
    p.fc = acq.fc
    p.pitch = acq.pitch
    p.kerf = 0.1 * acq.pitch
    p.width = acq.pitch - p.kerf
    p.Nelements = acq.n_elements
    p.bandwidth = acq.bandwidth
    p.radius = np.inf
    p.c = SOUND_SPEED
    p.fs = FS_PER_FC * acq.fc
    p.attenuation = acq.attenuation
    p.fnumber = 0.0  # full receive aperture; apodisation is applied to the channels
    return p


def tx_delays(acq: Acquisition, angle: float = 0.0) -> np.ndarray:
    """Transmit delays (s): one diverging wave over the sector, or a beam focused at
    ``acq.focus`` along ``angle`` (one line of a focused, line-by-line scan)."""
    pm = pymust()
    p = param(acq)
    if acq.transmit == "diverging":
        d = pm.txdelay(p, 0.0, 2 * acq.half_angle)
    elif acq.transmit == "focused":
        d = pm.txdelay(acq.focus * np.sin(angle), acq.focus * np.cos(angle), p)
    else:
        raise ValueError(f"transmit must be 'diverging' or 'focused', got {acq.transmit!r}")
    return np.asarray(d[0] if isinstance(d, tuple) else d, dtype=np.float64).reshape(-1)


def haze_tx_delays(acq: Acquisition) -> np.ndarray:
    """Transmit delays of the haze simulation: one diverging wave over the sector for every
    acquisition (a focused scan's haze would need one SIMUS run per line)."""
    from dataclasses import replace

    return tx_delays(replace(acq, transmit="diverging"))


def n_samples(acq: Acquisition, extra_depth: float = 0.0) -> int:
    """RF samples that cover echoes down to r_max (+ ``extra_depth``) for any element."""
    aperture = acq.n_elements * acq.pitch
    path = 2 * (acq.r_max + extra_depth) + aperture
    return int(np.ceil(path / SOUND_SPEED * FS_PER_FC * acq.fc)) + 64


def channel_rf(
    acq: Acquisition, x: np.ndarray, z: np.ndarray, rc: np.ndarray, delays: np.ndarray, nt: int
) -> np.ndarray:
    """RF channel signals (nt, elements) of point scatterers (SIMUS), cut or zero-padded to nt."""
    pm = pymust()
    opt = pm.utils.Options()
    opt.WaitBar = False
    opt.ParPool = False
    rf = pm.simus(
        np.asarray(x, float).ravel(),
        np.asarray(z, float).ravel(),
        np.asarray(rc, float).ravel(),
        delays.reshape(1, -1),
        param(acq),
        opt,
    )
    rf = np.asarray(rf[0] if isinstance(rf, tuple) else rf)
    out = np.zeros((nt, acq.n_elements), np.float64)
    n = min(nt, rf.shape[0])
    out[:n] = rf[:n]
    return out


def rx_window(acq: Acquisition) -> np.ndarray:
    """Receive apodisation over the elements: flat, or a Hann window."""
    if acq.rx_apodisation == "hann":
        return np.hanning(acq.n_elements + 2)[1:-1]
    if acq.rx_apodisation == "none":
        return np.ones(acq.n_elements)
    raise ValueError(f"rx_apodisation must be 'none' or 'hann', got {acq.rx_apodisation!r}")


def to_iq(acq: Acquisition, rf: np.ndarray) -> np.ndarray:
    """I/Q demodulation at the centre frequency, receive apodisation applied per channel."""
    pm = pymust()
    iq = pm.rf2iq(rf, FS_PER_FC * acq.fc, acq.fc)
    iq = np.asarray(iq[0] if isinstance(iq, tuple) else iq)
    return iq * rx_window(acq)[None, :]


def das_matrix(acq: Acquisition, nt: int, x: np.ndarray, z: np.ndarray, delays: np.ndarray):
    """Sparse delay-and-sum matrix from (nt, elements) I/Q channels to the points (x, z)."""
    pm = pymust()
    return pm.dasmtx(1j * np.array([nt, acq.n_elements]), x, z, delays, param(acq))


def beamform(m, iq: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Apply a DAS matrix to channel I/Q (nt, elements); returns complex pixels of ``shape``."""
    return np.asarray(m @ iq.flatten(order="F")).reshape(shape, order="F")


def delay_rf(rf: np.ndarray, delays_s: np.ndarray, fs: float) -> np.ndarray:
    """Delay each channel of RF (nt, elements) by its own time (s), fractional, through the FFT;
    samples shifted past the end are dropped (the buffer must be long enough)."""
    nt = rf.shape[0]
    n = 2 * nt  # zero-padded: no wrap-around of delayed echoes into the start
    f = np.fft.rfftfreq(n, 1.0 / fs)
    spec = np.fft.rfft(rf, n=n, axis=0)
    spec *= np.exp(-2j * np.pi * f[:, None] * np.asarray(delays_s)[None, :])
    return np.fft.irfft(spec, n=n, axis=0)[:nt]
