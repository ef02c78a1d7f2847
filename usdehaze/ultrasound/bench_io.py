"""Reading benchmark: frames/s and peak memory when streaming a large scan in frame batches."""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np


def make_file(path: Path, frames: int = 200, shape: tuple[int, int] = (512, 256)) -> Path:
    """A zea-layout file of random IQ, written frame block by frame block."""
    import h5py

    from usdehaze.ultrasound.io import write_scan

    nz, nx = shape
    z, x = np.meshgrid(np.linspace(0.0, 0.1, nz), np.linspace(-0.02, 0.02, nx), indexing="ij")
    write_scan(
        path,
        np.zeros((1, nz, nx), np.complex64),
        x,
        z,
        grid="cartesian",
        axes={"x": x[0], "z": z[:, 0]},
        compression=None,
    )
    with h5py.File(path, "a") as f:  # grow to the full size without holding it in memory
        ds = f["tracks/track_0/data/beamformed_data/values"]
        del f["tracks/track_0/data/beamformed_data/values"]
        new = f.create_dataset(
            "tracks/track_0/data/beamformed_data/values",
            shape=(frames, nz, nx, 2),
            dtype="float32",
            chunks=(1, nz, nx, 2),
        )
        rng = np.random.default_rng(0)
        for i in range(0, frames, 10):
            new[i : i + 10] = rng.standard_normal(
                (min(10, frames - i), nz, nx, 2), dtype=np.float32
            )
        del ds
    return path


def bench_read(path: Path, batch: int = 16) -> dict:
    from usdehaze.ultrasound.io import load_scan

    tracemalloc.start()
    t0 = time.perf_counter()
    n = 0
    with load_scan(path) as s:
        for idx, iq in s.batches(batch=batch):
            n += len(idx)
            float(np.abs(iq[:, ::64, ::64]).mean())  # touch the data
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = path.stat().st_size
    return {
        "frames": n,
        "seconds": seconds,
        "frames_per_s": n / seconds,
        "peak_mb": peak / 2**20,
        "file_mb": size / 2**20,
        "batch": batch,
    }


def run(
    file: Path | None = None,
    frames: int = 200,
    shape=(512, 256),
    batch: int = 16,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Read ``file`` (default: a generated scan of ``frames`` frames) in batches; ``progress``
    gets one line per stage."""
    say = progress or (lambda s: None)
    if file is not None:
        say(f"bench io: reading {file} ...")
        return bench_read(Path(file), batch)
    with tempfile.TemporaryDirectory() as d:
        say(
            f"bench io: writing a {frames}-frame {shape[0]}x{shape[1]} scan to a temporary file ..."
        )
        p = make_file(Path(d) / "bench.h5", frames, shape)
        say("bench io: reading it ...")
        return bench_read(p, batch)
