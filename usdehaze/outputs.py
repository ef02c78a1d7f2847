"""Where usdehaze may write: one check for every command's output, made before any work.

An output may replace only what a usdehaze writer made. Every writer stamps its output with
the marker :data:`MARKER` (an HDF5/zarr root attribute, a key of a JSON file, the ``Creator``
metadata of a figure), and :func:`check_output` refuses

* an output that is, contains or lies inside an input (also through ``..`` and symlinks),
* an existing file, folder or store that carries no usdehaze marker,
* a scan usdehaze wrote (the marker's kind, :data:`SCAN_WRITERS`: ``simulate``'s output, the
  demo scan): a scan is an input, so only the command that makes scans may replace one,
* a folder where a file is expected, a parent that is a file, a name the file system cannot
  hold, a folder that cannot be written,

each as one :class:`~usdehaze.errors.UsageError` line naming the path. :func:`write_error`
turns a failed write (disk full, permission) into such a line too.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from usdehaze.errors import UsageError

MARKER = "usdehaze_output"
"""The attribute (or JSON key, or figure metadata) naming the usdehaze writer of an output."""
SCAN_WRITERS = ("simulate",)
"""Writers (marker values) whose HDF5/zarr outputs are scans: inputs of the other commands."""

# outputs written before the marker existed, and priors (their JSON is core.priors' own):
# recognised by their own format attribute
_LEGACY_FORMATS = ("usdehaze-result/1", "usdehaze-batch/1", "usdehaze-prior/1", "usdehaze-adapt/1")
_LEGACY_SCAN = "beamformed IQ written by usdehaze"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# files whose marker is a text token in their first or last 64 kB: figures (PNG, SVG: first;
# PDF: last), videos (container metadata: MP4 at either end, AVI first) and DICOM cines (the
# DerivationDescription lies in the header, before the pixel data)
_SNIFFED = (".png", ".pdf", ".svg", ".mp4", ".mov", ".avi", ".dcm")
_SNIFF = 1 << 16


def figure_metadata(writer: str) -> dict[str, str]:
    """matplotlib ``savefig(metadata=...)`` that marks a figure as usdehaze's (PNG, PDF, SVG)."""
    from usdehaze import __version__

    return {"Creator": f"usdehaze {__version__} {writer} ({MARKER})"}


def is_usdehaze_output(path: str | os.PathLike) -> bool:
    """True when ``path`` carries the marker of a usdehaze writer (or a pre-marker format)."""
    return written_by(path) is not None


def is_usdehaze_scan(path: str | os.PathLike) -> bool:
    """True when ``path`` is a scan usdehaze wrote (an HDF5 file or zarr store whose marker is
    one of :data:`SCAN_WRITERS`, or the pre-marker demo scan)."""
    return written_by(path) in SCAN_WRITERS and (Path(path).is_dir() or _is_hdf5(Path(path)))


def written_by(path: str | os.PathLike) -> str | None:
    """The usdehaze writer that made ``path``: its marker's value (``run``, ``napari``,
    ``simulate``...), ``""`` where the marker names none (a pre-marker format, a figure, a
    video), None when usdehaze did not write it."""
    path = Path(path)
    try:
        if path.is_dir():
            return _zarr_writer(path)
        if not path.is_file():
            return None
        with open(path, "rb") as f:
            head = f.read(_SNIFF)
        if head.startswith(_HDF5_SIGNATURE):
            return _hdf5_writer(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            if path.stat().st_size > 64 << 20:
                return None
            return _writer(json.loads(path.read_text()))
        if suffix == ".safetensors":  # a prior's weights: its JSON beside it says whose
            return "" if _prior_json(path.with_suffix(".json")) else None
        if suffix in _SNIFFED or head[128:132] == b"DICM":
            token = MARKER.encode()
            if token in head:
                return ""
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - _SNIFF))
                return "" if token in f.read() else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return None


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE
    except OSError:
        return False


def _writer(attrs: object) -> str | None:
    """The marker's value in ``attrs`` (``""`` for a pre-marker format), None without one."""
    if not isinstance(attrs, dict):
        return None
    if MARKER in attrs:
        return str(_text(attrs[MARKER]))
    return "" if attrs.get("format") in _LEGACY_FORMATS else None


def _prior_json(path: Path) -> bool:
    try:
        if not path.is_file() or path.stat().st_size > 64 << 20:
            return False
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("format") == "usdehaze-prior/1"


def _zarr_writer(path: Path) -> str | None:
    """The marker in a zarr store's root attributes (v3 ``zarr.json`` or v2 ``.zattrs``)."""
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        meta = path / name
        if meta.is_file():
            data = json.loads(meta.read_text())
            return _writer(data.get(key) if key and isinstance(data, dict) else data)
    return None


def _hdf5_writer(path: Path) -> str | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _text(v) for k, v in f.attrs.items()}
            group = f.get("usdehaze")
            inner = {k: _text(v) for k, v in group.attrs.items()} if group is not None else {}
    except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
        return None
    if attrs.get("description") == _LEGACY_SCAN:  # the demo scan, from before the marker
        return "simulate"
    found = _writer(attrs)
    return found if found is not None else _writer(inner)


def _text(v: object) -> object:
    return v.decode() if isinstance(v, bytes) else v


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    target: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    *,
    option: str = "-o",
    folder: bool = False,
    scans: bool = False,
) -> Path:
    """Refuse (one UsageError line) an output that would destroy anything not usdehaze's.

    ``inputs`` are the command's input files (a path inside a zarr store, ``st.zarr/iq``,
    counts as the store); ``folder`` for outputs that are folders or zarr stores (else a file
    is expected); ``scans`` only for the command that writes scans (``simulate``): any other
    output never replaces a scan, even one usdehaze wrote. Returns ``target`` as a Path. Call
    it before any work is done.
    """
    target = Path(target)
    _check_name(target, option)
    _check_parent(target, option)
    check_inputs(target, inputs, option)
    if target.is_symlink() and not target.exists():
        raise UsageError(
            f"{target}: {option} is a broken symbolic link; remove it or choose another {option}"
        )
    if target.exists():
        if target.is_dir() and not folder and target.suffix != ".zarr":
            raise UsageError(
                f"{target}: {option} is an existing folder; give a file name (e.g. {target.name}.h5)"
            )
        if not is_usdehaze_output(target):
            kind = "folder" if target.is_dir() else "file"
            raise UsageError(
                f"{target}: {option} is an existing {kind} that usdehaze did not write "
                f"(no '{MARKER}' marker); it is left alone: remove it yourself or choose another {option}"
            )
        if not scans and is_usdehaze_scan(target):
            raise UsageError(
                f"{target}: {option} is a scan (written by usdehaze {written_by(target)}), an "
                f"input that is never replaced, only a result usdehaze wrote; choose another {option}"
            )
    return target


def check_inputs(
    target: str | os.PathLike, inputs: Iterable[str | os.PathLike], option: str = "-o"
) -> None:
    """Refuse an output that is, contains or lies inside (a folder or store) one of ``inputs``,
    also through ``..``, symbolic and hard links."""
    target = Path(target)
    real = _resolved(target)
    for inp in inputs:
        inp = Path(inp)
        src = _resolved(inp)
        if src == real or _same(inp, target):
            raise UsageError(
                f"{target}: {option} would overwrite the input {inp}; choose another {option}"
            )
        if _inside(src, real):
            raise UsageError(
                f"{target}: {option} contains the input {inp}; writing it would overwrite the input, choose another {option}"
            )
        if src in real.parents and src.is_dir():
            raise UsageError(
                f"{target}: {option} lies inside the input {inp}; choose another {option} outside it"
            )


def _check_name(target: Path, option: str) -> None:
    limit = 255
    with contextlib.suppress(OSError, ValueError, AttributeError):
        limit = os.pathconf(_existing_ancestor(target.parent), "PC_NAME_MAX")
    for part in target.parts:
        n = len(os.fsencode(part))
        if n > limit:
            raise UsageError(
                f"{target}: {option}: a name of {n} bytes is too long (the file system allows {limit})"
            )


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_parent(target: Path, option: str) -> None:
    """The nearest existing folder above ``target`` must be a folder that takes new files."""
    probe = _existing_ancestor(target.parent)
    if not probe.is_dir():
        raise UsageError(f"{target}: {option}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{target}: {option}: no permission to write in {probe}")
    try:  # permissions say yes; the file system may still say no (read-only mount)
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise UsageError(f"{target}: {option}: cannot write in {probe} ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip()


def write_error(target: str | os.PathLike, exc: BaseException) -> UsageError:
    """The one-line error for a failed write of ``target`` (its previous version is kept)."""
    target = Path(target)
    kept = "the previous one is unchanged" if target.exists() else "nothing was written"
    return UsageError(f"{target}: cannot write ({_reason(exc)}); {kept}")


@contextlib.contextmanager
def writing(target: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised by the block (which only writes ``target``) into its one line."""
    try:
        yield
    except UsageError:
        raise
    except OSError as exc:
        raise write_error(target, exc) from exc
