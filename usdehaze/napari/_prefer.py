"""usdehaze as napari's reader for its own suffixes while the plugin is in use.

napari asks which reader to use (its *Choose reader* dialog) whenever more than one plugin
claims a file's suffix and its settings name no preferred reader for it
(``settings.plugins.extension2reader``, the table *Preferences > Plugins* edits and the
dialog's *Remember this choice* fills). napari's own reader claims ``*.h5``, ``*.hdf5``,
``*.dcm``, ``*.mp4``, ``*.zarr``… although it cannot read these scans, so File > Open of every
scan stopped at that dialog. npe2 has no reader priority; the preference is the only way to
skip the dialog.

While a usdehaze widget is open in a window (``usdehaze view`` opens both), usdehaze is made the
preferred reader of each of its patterns that another reader also claims and for which the
user has set no reader of their own (an entry already there, whichever reader it names, is
left as it is). The entries are for the session: putting them in does not write napari's
settings file, and they are taken out again (the file rewritten without them) when the last
such window closes, unless the user changed them meanwhile. napari writes its whole settings
whenever it saves something else (a dock's position, say), so a process that dies with the
window open may leave them in the file, as if chosen in the dialog with *Remember this
choice*; *Preferences > Plugins* lists and removes them.
"""

from __future__ import annotations

import os
from typing import Any

from usdehaze.napari._common import Lifetime, WindowWatch

READER = "usdehaze"

# what this process put in the settings: pattern -> reader; and the windows holding them
_state: dict[str, Any] = {"added": {}, "windows": set()}


def shared_patterns() -> list[str]:
    """usdehaze's filename patterns that another napari reader also claims (each checked on a
    file name of its own, as napari checks a path), and ``*.zarr/`` for zarr folders (napari
    matches a folder's path with a trailing separator) when another reader takes folders."""
    from napari.plugins import _npe2

    from usdehaze.ultrasound.io import filename_patterns

    shared = []
    for pattern in filename_patterns():
        name = "usdehaze-probe" + pattern.removeprefix("*")
        if set(_npe2.get_readers(name)) - {READER}:
            shared.append(pattern)
    if "*.zarr" in shared:
        shared.append("*.zarr" + os.sep)
    return shared


def _settings() -> Any:
    from napari.settings import get_settings

    return get_settings()


def claim() -> dict[str, str]:
    """Put usdehaze in napari's reader preferences for the shared patterns the user has no
    entry for, without writing the settings file; what was added (pattern -> reader)."""
    settings = _settings()
    current = dict(settings.plugins.extension2reader)
    new = {p: READER for p in shared_patterns() if p not in current}
    if new:
        saving = settings._save_on_change
        settings._save_on_change = False  # for this session: not written to the user's file
        try:
            settings.plugins.extension2reader = {**current, **new}
        finally:
            settings._save_on_change = saving
        _state["added"].update(new)
    return new


def release() -> None:
    """Take out the entries :func:`claim` added that still name usdehaze (the user may have
    chosen another reader meanwhile: kept), napari's settings file saved without them."""
    added, _state["added"] = _state["added"], {}
    settings = _settings()
    current = dict(settings.plugins.extension2reader)
    kept = {p: r for p, r in current.items() if not (added.get(p) == r)}
    if kept != current:
        settings.plugins.extension2reader = kept


def prefer_usdehaze(viewer: Any) -> None:
    """usdehaze is in use in ``viewer``'s window (a widget of it opened): its shared patterns
    open with usdehaze (:func:`claim`) until the last such window closes (:func:`release`)."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # napari hands plugins a PublicOnlyProxy
    try:
        window = viewer.window._qt_window
    except AttributeError:  # a viewer without a Qt window: no File > Open to spare
        return
    if id(window) in _state["windows"]:
        return
    _state["windows"].add(id(window))
    claim()
    life = Lifetime()
    life.on_close(lambda key=id(window): _window_closed(key))
    WindowWatch(window, life)
    window.destroyed.connect(life)  # a window deleted without a close event


def _window_closed(key: int) -> None:
    _state["windows"].discard(key)
    if not _state["windows"]:
        release()
