"""Corpus shards on disk (numpy only: reading needs no pymust).

One ``.npz`` per acquisition: tissue and haze I/Q (n, z, x) complex64, the masks, the
acquisition and every sample's drawn settings (JSON). Shards are written atomically, so a corpus
build that stops leaves only whole shards and resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.ultrasound.logcomp import iq_reference, iq_to_mulaw, to_db


def write_shard(path: Path, acq: dict, samples: list[dict[str, Any]]) -> None:
    """Write one acquisition's samples to ``path`` atomically (temp file, then rename)."""
    from usdehaze.atomic import atomic_path

    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            tissue=np.stack([s["tissue"] for s in samples]),
            haze=np.stack([s["haze"] for s in samples]),
            cavity=np.stack([s["cavity"] for s in samples]),
            myocardium=np.stack([s["myocardium"] for s in samples]),
            tissue_mask=np.stack([s["tissue_mask"] for s in samples]),
            meta=np.array(
                json.dumps({"acquisition": acq, "samples": [s["params"] for s in samples]})
            ),
        )


def read_shard(path: Path) -> dict[str, Any]:
    """One shard's arrays and its metadata (``meta``: acquisition and per-sample settings)."""
    from usdehaze.errors import UsageError

    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files if k != "meta"}
            out["meta"] = json.loads(str(z["meta"]))
        n = len(out["tissue"])
        for key in SAMPLE_ARRAYS:
            if len(out[key]) != n:
                raise ValueError(f"'{key}' holds {len(out[key])} samples, 'tissue' {n}")
        if not isinstance(out["meta"], dict) or len(out["meta"]["samples"]) != n:
            raise ValueError("'meta' does not describe every sample")
        out["meta"]["acquisition"]  # noqa: B018 - must be there
    except Exception as exc:  # noqa: BLE001 - bad zip, truncated arrays, pickles, missing keys
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise UsageError(f"{path}: not a corpus shard ({type(exc).__name__}: {first})") from None
    return out


SAMPLE_ARRAYS = ("tissue", "haze", "cavity", "myocardium", "tissue_mask")


def shards(folder: str | Path) -> list[Path]:
    """The shards of one split folder, in name order."""
    return sorted(Path(folder).glob("*.npz"))


def iter_samples(folder: str | Path) -> Iterator[dict[str, Any]]:
    """Every sample of a split: tissue, haze, masks, its settings and its acquisition."""
    for p in shards(folder):
        yield from shard_samples(p)


def shard_samples(p: Path) -> Iterator[dict[str, Any]]:
    """Every sample of one shard (as iter_samples gives them)."""
    d = read_shard(p)
    for i in range(len(d["tissue"])):
        yield {
            "tissue": d["tissue"][i],
            "haze": d["haze"][i],
            "cavity": d["cavity"][i],
            "myocardium": d["myocardium"][i],
            "tissue_mask": d["tissue_mask"][i],
            "params": d["meta"]["samples"][i],
            "acquisition": d["meta"]["acquisition"],
            "name": f"{p.stem}/{i}",
        }


def cases(folder: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Evaluation cases (the keys usdehaze.ultrasound.evaluate scores) from a corpus split:
    dB images referenced to the hazy frame's maximum, cavity vs myocardium masks."""
    out = []
    for k, s in enumerate(iter_samples(folder)):
        if limit is not None and k >= limit:
            break
        hazy = s["tissue"] + s["haze"]
        ref = float(np.abs(hazy).max())
        out.append(
            {
                "seed": k,
                "name": s["name"],
                "haze_level_db": float(s["params"]["haze_db"]),
                "iq": hazy,
                "input": to_db(hazy[None], normalise=ref)[0],
                "clean": to_db(s["tissue"][None], normalise=ref)[0],
                "haze": to_db(s["haze"][None], normalise=ref)[0],
                "target": s["cavity"],
                "background": s["myocardium"],
                "sector": np.ones(hazy.shape, bool),
                "tissue": s["tissue_mask"],
            }
        )
    return out


def prior_tiles(
    folder: str | Path, tile: int = 96, per_frame: int = 12, seed: int = 0
) -> dict[str, np.ndarray]:
    """Training tiles for the iq priors: μ-law I/Q (N, 2, tile, tile) of tissue and of haze,
    both scaled by the hazy frame's reference as a dehazing run scales its input; tiles are
    cut at random places, the same places for tissue and haze."""
    rng = np.random.default_rng(seed)
    tissue, haze = [], []
    for s in iter_samples(folder):
        hazy = (s["tissue"] + s["haze"])[None]
        ref = iq_reference(hazy)
        t, h = iq_to_mulaw(s["tissue"][None], ref)[0], iq_to_mulaw(s["haze"][None], ref)[0]
        nz, nx = t.shape[-2:]
        th, tw = min(tile, nz), min(tile, nx)
        for _ in range(per_frame):
            i, j = rng.integers(0, nz - th + 1), rng.integers(0, nx - tw + 1)
            tissue.append(_fit(t[:, i : i + th, j : j + tw], tile))
            haze.append(_fit(h[:, i : i + th, j : j + tw], tile))
    return {"tissue": np.stack(tissue), "haze": np.stack(haze)}


def _fit(a: np.ndarray, tile: int) -> np.ndarray:
    """Reflect-pad a (2, h, w) tile up to (2, tile, tile) when a frame is smaller than a tile."""
    ph, pw = tile - a.shape[1], tile - a.shape[2]
    return np.pad(a, ((0, 0), (0, ph), (0, pw)), mode="reflect") if ph or pw else a
