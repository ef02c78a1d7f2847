"""napari writer: tissue and haze layers (with their input) → a usdehaze result file.

The frames written are the layers' stored-grid dB frames (not the scan-converted display), with
the input's geometry, so the file reads back in napari, ``usdehaze gcnr`` and ``usdehaze show``
like one written by ``usdehaze run``. A name without one of the writer's suffixes gets ``.h5``.
The path is checked like every command's output (usdehaze.outputs): never over the scan
shown, another scan (even one usdehaze simulated) or a file usdehaze did not write; only a
result usdehaze wrote is replaced. A refusal is raised as :class:`SaveRefused`, one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.napari._layers import META_KEY, Native

LayerData = tuple[Any, dict, str]
SUFFIXES = (".h5", ".hdf5", ".zarr")  # = napari.yaml's filename_extensions (tested)


class SaveRefused(RuntimeError):
    """A save usdehaze refuses, as one line. Not a ValueError (UsageError is one): napari's
    writer lookup takes a ValueError for "not a valid writer" and drops the message."""


_OWN_ATTRS = ("format", "complete", "frames_done", "n_frames", "grid")


def _role(native: Native, name: str) -> str:
    if native.role in ("tissue", "haze", "input", "tissue_std", "haze_std"):
        return native.role
    for role in ("tissue_std", "haze_std", "tissue", "haze", "input"):
        if name.endswith(role):
            return role
    return native.role


def _natives(data: list[LayerData]) -> dict[str, Native]:
    found: dict[str, Native] = {}
    for _, meta, kind in data:
        native = (meta.get("metadata") or {}).get(META_KEY)
        if kind != "image" or not isinstance(native, Native):
            continue
        role = _role(native, str(meta.get("name", "")))
        if role in found:
            raise UsageError(f"layers: more than one {role} layer selected, select one of each")
        found[role] = native
    return found


def write_result(path: str, data: list[LayerData]) -> list[str]:
    """Write the selected tissue + haze layers (+ input, std) as a result file; returns the
    path written (``path``, with ``.h5`` added when it has none of :data:`SUFFIXES`)."""
    if Path(path).suffix.lower() not in SUFFIXES:
        path = f"{path}.h5"
    try:
        return _write(path, data)
    except UsageError as exc:
        raise SaveRefused(str(exc)) from None


def _write(path: str, data: list[LayerData]) -> list[str]:
    from usdehaze import __version__
    from usdehaze.outputs import check_output
    from usdehaze.ultrasound.results import ResultWriter

    found = _natives(data)
    for role in ("tissue", "haze"):
        if role not in found:
            raise UsageError(
                f"{path}: no {role} layer among the selected layers (select usdehaze tissue and haze layers)"
            )
    tissue, haze = found["tissue"], found["haze"]
    inp = found["input"].db if "input" in found else tissue.input_db
    if inp is None:
        raise UsageError(
            f"{path}: the tissue layer does not know its input; select the input layer too"
        )
    arrays = {"input": inp, "tissue": tissue.db, "haze": haze.db}
    with_std = "tissue_std" in found and "haze_std" in found
    if with_std:
        arrays.update(tissue_std=found["tissue_std"].db, haze_std=found["haze_std"].db)
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise UsageError(f"{path}: layers differ in shape {shapes}; they must come from one run")
    n, *shape = shapes["tissue"]
    sources = [s for s in {tissue.source, haze.source} if s]
    check_output(path, sources)  # never over the scan shown, a scan, a file not usdehaze's
    attrs = {
        **{k: v for k, v in tissue.attrs.items() if k not in _OWN_ATTRS and v is not None},
        "usdehaze_version": __version__,
        "source": tissue.source,
        "dynamic_range": tissue.dynamic_range,
        "written_by": "napari",
    }
    attrs.setdefault("source_frames", [tissue.source_frame(i) for i in range(n)])
    with ResultWriter(
        path,
        n,
        tuple(shape),
        x=tissue.x,
        z=tissue.z,
        grid=tissue.grid,
        axes=tissue.axes,
        with_std=with_std,
        attrs=attrs,
        writer="napari",
    ) as w:
        for i in range(n):
            w.write(i, **{k: np.asarray(v[i]) for k, v in arrays.items()})
    return [str(Path(path))]
