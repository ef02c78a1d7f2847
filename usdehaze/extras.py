"""Optional dependencies, checked before any work: which package each feature needs, which extra
of ``pip install 'usdehaze[EXTRA]'`` brings it, and one line saying so when it is missing."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path

from usdehaze.errors import UsageError

# import name -> (distribution, extra that installs it)
PACKAGES = {
    "bm3d": ("bm3d", "baselines"),
    "pywt": ("PyWavelets", "baselines"),
    "skimage": ("scikit-image", "baselines"),
    "sklearn": ("scikit-learn", "baselines"),
    "pymust": ("pymust", "sim"),
    "napari": ("napari", "napari"),
}

# natural-image experiments: what each dataset kind and method needs beyond the base install
DATASET_NEEDS = {"photos": ("skimage",), "digits": ("sklearn",)}
METHOD_NEEDS = {"bm3d": ("bm3d",), "lasso": ("pywt",)}
METRIC_NEEDS = ("skimage",)  # SSIM (usdehaze.metrics.ssim)


def has(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(modules: Iterable[str]) -> list[str]:
    return [m for m in modules if not has(m)]


def install_hint(modules: Iterable[str]) -> str:
    """'the bm3d package (pip install 'usdehaze[baselines]')' for the missing ``modules``."""
    modules = list(modules)
    names = ", ".join(PACKAGES.get(m, (m, ""))[0] for m in modules)
    extras = sorted({PACKAGES[m][1] for m in modules if m in PACKAGES})
    what = f"the {names} package{'s' if len(modules) > 1 else ''}"
    return f"{what} (pip install 'usdehaze[{','.join(extras)}]')" if extras else what


def require(modules: Iterable[str], what: str) -> None:
    """One-line UsageError naming ``what`` and the extra to install, if any module is missing."""
    gone = missing(modules)
    if gone:
        raise UsageError(f"{what} needs {install_hint(gone)}")


def run_script(main: Callable[[], int | None], needs: Iterable[str] = (), what: str = "") -> None:
    """A pipeline script's entry (``python pipelines/X.py``): the optional packages it ``needs``
    checked before any work, a missing one, or any UsageError, as one line naming the extra to
    install (exit 2) instead of a traceback after work has started; Ctrl-C exits 130."""
    import sys

    name = what or f"python pipelines/{Path(sys.argv[0]).name}"
    try:
        require(needs, name)
        code = main()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
