"""Image-quality metrics (numpy only): gCNR, KS, CNR, contrast, PSNR, SSIM, haze removal.

Every region metric takes two sets of pixel values (target, background) of any shape; they are
flattened. gCNR (Rodriguez-Molares et al., 2020) = 1 − overlap of the two regions' histograms over
their shared range, 256 bins by default so numbers compare with published ones. Histograms bias
it upward for small regions (two samples of one distribution score ≈ 0.2 at 1000 pixels each,
≈ 0.07 at 10 000; docs/metrics.md), so the bin-free two-sample KS statistic is reported beside it.
Means and variances are population moments (ddof = 0), as in zea.

gCNR also rises when speckle is smoothed, so it cannot tell haze removal from despeckling. The
haze metrics (:func:`haze_contrast_db`, :func:`haze_removed`, :func:`tissue_level_db`) compare
mean dB levels of the cavity and the tissue instead, which smoothing leaves alone.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Domain = Literal["db", "envelope"]
DOMAINS = ("db", "envelope")


def _values(a: np.ndarray, name: str) -> np.ndarray:
    """Flattened float64 values; empty or non-finite regions are programming errors here."""
    v = np.ravel(np.asarray(a, dtype=np.float64))
    if v.size == 0:
        raise ValueError(f"{name}: empty region")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: region holds NaN or Inf values")
    return v


def gcnr(target: np.ndarray, background: np.ndarray, bins: int = 256) -> float:
    """1 − Σ_k min(p_t(k), p_b(k)), p = fraction of a region's pixels in each of ``bins`` equal
    bins spanning min..max of both regions (the same histogram as ``zea.metrics.gcnr``)."""
    a, b = _values(target, "gcnr target"), _values(background, "gcnr background")
    if int(bins) < 1:
        raise ValueError(f"gcnr: bins must be at least 1, got {bins}")
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if hi <= lo:  # both regions one constant value: identical distributions
        return 0.0
    edges = np.linspace(lo, hi, int(bins) + 1)
    pa, _ = np.histogram(a, edges)
    pb, _ = np.histogram(b, edges)
    return float(1.0 - np.minimum(pa / a.size, pb / b.size).sum())


def ks(target: np.ndarray, background: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic max_v |F_t(v) − F_b(v)| (no bins, in [0, 1])."""
    a = np.sort(_values(target, "ks target"))
    b = np.sort(_values(background, "ks background"))
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def cnr(target: np.ndarray, background: np.ndarray) -> float:
    """(μ_t − μ_b) / sqrt(σ_t² + σ_b²), signed (negative when the target is darker)."""
    a, b = _values(target, "cnr target"), _values(background, "cnr background")
    return float((a.mean() - b.mean()) / np.sqrt(a.var() + b.var()))


def cnr_db(target: np.ndarray, background: np.ndarray) -> float:
    """20·log10(|μ_t − μ_b| / sqrt((σ_t² + σ_b²)/2)), the convention of zea's ``cnr``."""
    a, b = _values(target, "cnr_db target"), _values(background, "cnr_db background")
    num = abs(a.mean() - b.mean())
    return float(20 * np.log10(max(num, 1e-30) / np.sqrt((a.var() + b.var()) / 2)))


def power(values: np.ndarray, domain: Domain = "db") -> np.ndarray:
    """Envelope power of pixel values: 10^(v/10) for a dB image, v² for an envelope."""
    v = np.asarray(values, dtype=np.float64)
    if domain == "db":
        return 10 ** (v / 10)
    if domain == "envelope":
        return v**2
    raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")


def contrast_db(target: np.ndarray, background: np.ndarray, domain: Domain = "db") -> float:
    """10·log10(mean P_t / mean P_b): ratio of the regions' mean envelope powers, in dB.

    ``domain`` says what the values are (dB image or envelope); both give the same number for the
    same pixels, so the contrast does not change with the gCNR domain.
    """
    pt = power(_values(target, "contrast target"), domain).mean()
    pb = power(_values(background, "contrast background"), domain).mean()
    return float(10 * np.log10(pt / pb))


def region_stats(
    target: np.ndarray, background: np.ndarray, bins: int = 256, domain: Domain = "db"
) -> dict[str, float | int]:
    """gcnr, ks, cnr, cnr_db, contrast_db, n_target, n_background of one region pair.

    gCNR, KS and CNR are computed on the values as given (dB or envelope); the contrast is always
    the mean-power ratio (see :func:`contrast_db`).
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    return {
        "gcnr": gcnr(target, background, bins),
        "ks": ks(target, background),
        "cnr": cnr(target, background),
        "cnr_db": cnr_db(target, background),
        "contrast_db": contrast_db(target, background, domain),
        "n_target": int(np.size(target)),
        "n_background": int(np.size(background)),
    }


def _pair(x: np.ndarray, ref: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    if x.shape != ref.shape:
        raise ValueError(f"{name}: shapes differ, {x.shape} vs reference {ref.shape}")
    return x, ref


def psnr(x: np.ndarray, ref: np.ndarray, data_range: float) -> float:
    """10·log10(data_range² / MSE) in dB (identical images: +inf)."""
    x, ref = _pair(x, ref, "psnr")
    mse = float(np.mean((x - ref) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(x: np.ndarray, ref: np.ndarray, data_range: float) -> float:
    """Structural similarity (scikit-image, 7×7 uniform window): 2-D images, or 3-D taken as
    channel-first (C, H, W) colour images."""
    from skimage.metrics import structural_similarity

    x, ref = _pair(x, ref, "ssim")
    if x.ndim == 3:
        return float(structural_similarity(x, ref, data_range=data_range, channel_axis=0))
    return float(structural_similarity(x, ref, data_range=data_range))


def haze_contrast_db(cavity_db: np.ndarray, tissue_db: np.ndarray) -> float:
    """C = mean dB(tissue) − mean dB(cavity): how far the cavity sits below the tissue; haze in
    the cavity lowers it, smoothing speckle does not change it."""
    return float(_values(tissue_db, "haze contrast tissue").mean()) - float(
        _values(cavity_db, "haze contrast cavity").mean()
    )


def speckle_sd_db(tissue_db: np.ndarray) -> float:
    """Standard deviation of dB values in a tissue region: the speckle statistic beside gCNR.

    Fully developed speckle has 5.6 dB (log-Rayleigh); smoothing lowers it, so a method whose
    gCNR rises while this falls below the clean image's is despeckling, not dehazing."""
    return float(np.std(_values(tissue_db, "speckle tissue")))


HAZE_MIN_LOSS_DB = 0.5


def haze_removed(
    c_out: float | np.ndarray,
    c_hazy: float | np.ndarray,
    c_clean: float | np.ndarray,
    min_loss_db: float = HAZE_MIN_LOSS_DB,
) -> float:
    """(C_out − C_hazy) / (C_clean − C_hazy): the share of the contrast lost to haze that comes
    back (1 all haze out, 0 none, < 0 hazier); NaN when the haze cost under ``min_loss_db``.

    Arrays (one C per frame) are pooled, Σ(C_out − C_hazy) / Σ(C_clean − C_hazy), so frames with
    little haze weigh little. A loss below ``min_loss_db`` (per frame on average) is within the
    sampling error of mean dB levels, and the ratio would be noise divided by noise: NaN, not a
    number that looks like a result.
    """
    out = np.ravel(np.asarray(c_out, np.float64))
    hazy = np.ravel(np.asarray(c_hazy, np.float64))
    clean = np.ravel(np.asarray(c_clean, np.float64))
    if not out.shape == hazy.shape == clean.shape or out.size == 0:
        raise ValueError(
            f"haze_removed: need equal, non-empty sizes, got {out.size}, {hazy.size}, {clean.size}"
        )
    lost = float(np.sum(clean - hazy))
    if not abs(lost) >= min_loss_db * out.size:  # also NaN for NaN input
        return float("nan")
    return float(np.sum(out - hazy)) / lost


def _mask_of(image: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    """``image[mask]`` after checking that the mask is boolean, fits the image and selects pixels."""
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != np.shape(image):
        raise ValueError(
            f"{name}: need a boolean mask shaped like the image {np.shape(image)}, got {m.dtype} {m.shape}"
        )
    return _values(np.asarray(image)[m], name)


def tissue_level_db(
    image_db: np.ndarray, region_mask: np.ndarray, reference_mask: np.ndarray
) -> float:
    """Mean dB of a region minus the median dB over ``reference_mask`` (the image's own tissue
    level): a level that global gain and smoothing (which lowers the maximum) leave alone."""
    region = _mask_of(image_db, region_mask, "tissue_level_db region")
    ref = _mask_of(image_db, reference_mask, "tissue_level_db reference")
    return float(region.mean() - np.median(ref))


def psnr_in_mask(
    image_db: np.ndarray, ref_db: np.ndarray, mask: np.ndarray, dynamic_range: float = 60.0
) -> float:
    """PSNR of a dB image against a reference over the masked pixels only (e.g. the imaged
    sector, so blank corners do not inflate it), data range = the dynamic range."""
    x, ref = _pair(image_db, ref_db, "psnr_in_mask")
    return psnr(
        _mask_of(x, mask, "psnr_in_mask"), _mask_of(ref, mask, "psnr_in_mask"), dynamic_range
    )


def frame_change_db(
    prev_db: np.ndarray, next_db: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """Flicker between two frames of a cine: mean |next − prev| in dB over the masked pixels
    (all when None). A dehazed cine should change no more from frame to frame than its input."""
    a, b = _pair(prev_db, next_db, "frame_change_db")
    d = np.abs(b - a)
    return float(np.mean(d if mask is None else _mask_of(d, mask, "frame_change_db")))
