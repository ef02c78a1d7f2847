"""HDF5 files read as given, never beyond: one check for every reader of HDF5 input."""

from __future__ import annotations

from pathlib import Path

from usdehaze.errors import UsageError


class OutsideData(UsageError):
    """An HDF5 file whose data lies outside it: refused, whichever reader looks at it."""


def only_inside(f, path: Path) -> None:
    """Refuse an HDF5 file whose data lies outside it: external links, datasets with external
    raw storage, virtual datasets. Each would make usdehaze read (and write into a result)
    whatever other file the crafted one points at."""
    import h5py

    def walk(group, prefix: str) -> None:
        for name in group:
            where = f"{prefix}{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise OutsideData(
                    f"{path}: key '{where}': an external link to {link.filename}; expected data "
                    "inside the file (usdehaze reads nothing outside its input)"
                )
            if isinstance(link, h5py.SoftLink):
                continue  # it names an object inside the file, checked where it lies
            obj = group.get(name)
            if isinstance(obj, h5py.Group):
                walk(obj, where + "/")
            elif isinstance(obj, h5py.Dataset) and (obj.is_virtual or obj.external):
                kind = "a virtual dataset" if obj.is_virtual else "external raw storage"
                raise OutsideData(
                    f"{path}: key '{where}': {kind}; expected data inside the file (usdehaze "
                    "reads nothing outside its input)"
                )

    walk(f, "")
