"""Where the usdehaze docks go in napari's window: a first launch fits the screen, the dock
column fits every gCNR column, the Dehaze form its own height, and the docks are arranged again
when one is added (``usdehaze view`` or Plugins > usdehaze) and when the window is resized.
Knows the widgets only by their ``USDEHAZE_DOCK`` attribute, so they may import it."""

from __future__ import annotations

import weakref
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer


def fit_screen(viewer: Any) -> bool:
    """On a first launch (napari has no window size saved), the window takes the screen's
    available area: it opened at 1089×935 on a 1600×1000 screen, the canvas 200 px wide and
    the gCNR table scrolling sideways. True when it was resized."""
    from napari.settings import get_settings

    if get_settings().application.window_size:  # the user's own size, kept
        return False
    qt = viewer.window._qt_window
    screen = qt.screen() if hasattr(qt, "screen") else None
    if screen is None:
        return False
    area = screen.availableGeometry()
    qt.resize(area.width(), area.height())
    qt.move(area.topLeft())
    return True


def docks(viewer: Any) -> list[tuple[Any, Any]]:
    """(QDockWidget, widget) of the usdehaze Dehaze and gCNR docks in ``viewer``'s window, in
    that order (either may be missing: opened from Plugins > usdehaze one at a time)."""
    from qtpy.QtWidgets import QDockWidget

    found = []
    for kind in ("dehaze", "gcnr"):  # the widgets' USDEHAZE_DOCK (no import: no cycle)
        for w in list(viewer.window.dock_widgets.values()):
            if getattr(w, "USDEHAZE_DOCK", None) != kind:
                continue
            dock = w.parentWidget()
            while dock is not None and not isinstance(dock, QDockWidget):
                dock = dock.parentWidget()
            if dock is not None and not dock.isFloating():
                found.append((dock, w))
    return found


def arrange(viewer: Any, view: bool = True) -> None:
    """Dock column wide enough for every gCNR table column (at most half the window), the
    Dehaze form at its natural height with the rest for the gCNR table, and (``view``) the
    whole image in view (the canvas shrank when the docks were added). Works on whichever
    usdehaze docks are there; called again when the window is resized and a dock is added."""
    from qtpy.QtCore import Qt

    found = docks(viewer)
    if not found:
        return
    qt = viewer.window._qt_window
    width = max(getattr(w, "needed_width", lambda w=w: w.sizeHint().width())() for _, w in found)
    width = min(width + 8, int(0.5 * qt.width()))
    qt.resizeDocks([d for d, _ in found], [width] * len(found), Qt.Horizontal)
    if len(found) == 2:
        (d_dock, d_widget), (g_dock, _) = found
        tall = d_widget.sizeHint().height() + 30  # + the dock's title bar
        qt.resizeDocks([d_dock, g_dock], [tall, max(qt.height() - tall, tall)], Qt.Vertical)
    if view:
        viewer.reset_view()


class Relayout(QObject):
    """A child of the main window that arranges the usdehaze docks again after the window was
    resized (resizing did not re-lay them out) or a dock was added: twice, 100 ms apart (Qt
    lays the table out at the new width in between, so the second pass sees what still
    scrolls), then the whole image in view when a dock was added (not on a resize: the user's
    zoom stays). Holds the viewer weakly, so it never keeps a closed viewer alive."""

    DELAY_MS = 150  # after a resize (the user may still be dragging)
    SECOND_MS = 100  # the second pass

    def __init__(self, viewer: Any) -> None:
        qt = viewer.window._qt_window
        super().__init__(qt)
        self.setObjectName("usdehaze-relayout")
        self._viewer = weakref.ref(viewer)
        self._passes, self._view = 0, False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._arrange)
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.timeout.connect(self._reset_view)
        qt.installEventFilter(self)

    @classmethod
    def of(cls, viewer: Any) -> Relayout:
        """The window's Relayout, made on first use."""
        qt = viewer.window._qt_window
        found = qt.findChild(QObject, "usdehaze-relayout")
        return found if isinstance(found, cls) else cls(viewer)

    def schedule(self, view: bool = False, delay: int = DELAY_MS) -> None:
        """Arrange (twice) in ``delay`` ms; ``view``: then fit the image in view."""
        self._view = self._view or view
        self._passes = 2
        self._timer.start(delay)

    def eventFilter(self, obj: Any, event: Any) -> bool:
        if obj is self.parent() and event.type() == QEvent.Resize:
            self.schedule()
        return False

    def _arrange(self) -> None:
        viewer = self._viewer()
        if viewer is None:
            return
        self._passes -= 1
        try:
            arrange(viewer, view=self._view)
        except RuntimeError:  # the window is being deleted
            return
        if self._passes > 0:
            self._timer.start(self.SECOND_MS)
        elif self._view:
            self._view = False
            self._view_timer.start(30)  # once the canvas has its new size

    def _reset_view(self) -> None:
        viewer = self._viewer()
        if viewer is not None:
            try:
                viewer.reset_view()
            except RuntimeError:
                pass


def docked(viewer: Any) -> None:
    """A usdehaze widget went into a dock (``usdehaze view`` or Plugins > usdehaze): arrange
    the docks once the dock is laid out, and again whenever the window is resized."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # napari hands plugins a PublicOnlyProxy
    try:
        Relayout.of(viewer).schedule(view=True, delay=0)
    except (AttributeError, RuntimeError):  # a viewer without a Qt window
        pass
