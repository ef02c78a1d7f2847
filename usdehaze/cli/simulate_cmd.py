"""``usdehaze simulate``: write a simulated hazy sector scan with ground truth and its roi.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import typer

from usdehaze.cli._app import app


def write_simulation(
    out: Path, kind: str = "cardiac", frames: int = 8, seed: int = 0, haze_db: float = -12.0
) -> tuple[Path, Path]:
    """Simulate and write OUT (zea layout; extras 'tissue' and 'haze') and OUT.roi.json."""
    from usdehaze.errors import UsageError
    from usdehaze.outputs import check_output
    from usdehaze.ultrasound.simulate import (
        CENTER_FREQUENCY,
        SOUND_SPEED,
        simulate_cardiac,
        simulate_cyst,
    )

    out = Path(out)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise UsageError(f"{out}: simulate writes an HDF5 file (zea layout); give NAME.h5")
    roi_path = out.with_suffix(".roi.json")
    check_output(out)  # both before any work: never over a file usdehaze did not write
    if not _legacy_pair(out, roi_path):
        check_output(roi_path, [out], option="the ROI file")
    if kind not in ("cardiac", "cyst"):
        raise UsageError(f"--kind {kind}: expected cardiac or cyst")
    from usdehaze import limits

    if not 1 <= frames <= limits.MAX_SIMULATE_FRAMES:
        raise UsageError(
            f"--frames {frames}: expected 1 to {limits.MAX_SIMULATE_FRAMES} (the limit)"
        )
    if not (math.isfinite(haze_db) and abs(haze_db) <= limits.MAX_HAZE_DB):
        raise UsageError(
            f"--haze-db {haze_db}: expected a finite number of dB between -{limits.MAX_HAZE_DB:g} and {limits.MAX_HAZE_DB:g}"
        )
    limits.seed(seed, "--seed")
    sim = (simulate_cardiac if kind == "cardiac" else simulate_cyst)(
        frames, seed=seed, haze_db=haze_db
    )
    path = write_simulated(
        out,
        roi_path,
        sim.tissue_iq,
        sim.haze_iq,
        sim.x,
        sim.z,
        sim.axes,
        sim.roi,
        probe="simulated phased array",
        center_frequency=CENTER_FREQUENCY,
        sound_speed=SOUND_SPEED,
        params=sim.params,
    )
    return path, roi_path


def write_simulated(
    out: Path,
    roi_path: Path,
    tissue: np.ndarray,
    haze: np.ndarray,
    x: np.ndarray,
    z: np.ndarray,
    axes: dict,
    roi: dict,
    *,
    probe: str,
    center_frequency: float,
    sound_speed: float,
    params: dict,
) -> Path:
    """Write a simulated polar scan (zea layout: tissue + haze, with 'tissue' and 'haze' extras
    and the simulation's parameters) and its ROI file, both marked as usdehaze's; used by
    ``usdehaze simulate`` and pipelines/make_demo_scan.py. No output checks: callers make them."""
    from usdehaze import __version__
    from usdehaze.atomic import atomic_path
    from usdehaze.outputs import MARKER, writing
    from usdehaze.ultrasound.io import write_scan
    from usdehaze.ultrasound.roi import roi_from_dict

    with writing(out):
        path = write_scan(
            out,
            tissue + haze,
            x,
            z,
            grid="polar",
            axes=axes,
            probe=probe,
            center_frequency=center_frequency,
            sound_speed=sound_speed,
            extras={"tissue": tissue, "haze": haze},
            attrs={
                "usdehaze_version": __version__,
                MARKER: "simulate",
                "simulation": json.dumps(params, default=float),
            },
        )
    # validated like save_roi, marked as usdehaze's so that a rerun may replace it
    marked = {MARKER: "simulate", **roi_from_dict(roi, str(roi_path)).to_dict()}
    with writing(roi_path), atomic_path(roi_path) as tmp:
        tmp.write_text(json.dumps(marked, indent=2))
    return path


def _legacy_pair(out: Path, roi_path: Path) -> bool:
    """A ROI file an older usdehaze simulate wrote (no marker yet): exactly the ROI keys, beside
    the scan of the same name that usdehaze wrote."""
    from usdehaze.outputs import is_usdehaze_output

    try:
        keys = set(json.loads(roi_path.read_text()))
    except (OSError, ValueError, TypeError):
        return False
    return keys == {"version", "units", "pairs"} and is_usdehaze_output(out)


@app.command()
def simulate(
    out: Path = typer.Argument(..., help="Output scan file (.h5)."),
    kind: str = typer.Option("cardiac", "--kind", help="cardiac (apical-like) or cyst."),
    frames: int = typer.Option(8, "--frames", help="Number of frames."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same scan)."),
    haze_db: float = typer.Option(
        -12.0, "--haze-db", help="Haze power relative to the myocardium, dB."
    ),
) -> None:
    """Simulated hazy sector scan with ground-truth tissue and haze (keys 'tissue', 'haze') and a roi.json."""
    path, roi = write_simulation(out, kind, frames, seed, haze_db)
    typer.echo(f"{path}\n{roi}")
