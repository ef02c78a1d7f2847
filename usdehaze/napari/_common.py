"""What the usdehaze dock widgets share: their lifetime (closing stops their workers), napari
workers started the same way, error notifications, and the small Qt pieces both forms use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QComboBox, QLabel, QWidget

from usdehaze.errors import UsageError


class Lifetime:
    """Plain-Python state shared by a widget and its workers: ``closed`` once the widget's
    window or dock closed or Qt deleted it; closing runs the stop hooks (set stop flags, close
    mailboxes, quit workers) and makes every late callback a no-op. Holds no reference to the
    widget, so it is safe to call from ``destroyed``."""

    def __init__(self) -> None:
        self.closed = False
        self._hooks: list[Any] = []

    def on_close(self, hook: Any) -> None:
        """Call ``hook()`` when closed (at once when already closed)."""
        if self.closed:
            hook()
        else:
            self._hooks.append(hook)

    def __call__(self, *args: Any) -> None:
        # getattr: Qt may send ``destroyed`` after Python's collector cleared this object
        if getattr(self, "closed", True):
            return
        self.closed = True
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # noqa: BLE001 - every worker must get its stop request
                pass


class WindowWatch(QObject):
    """A child of the main window that closes a :class:`Lifetime` when the window closes (its
    close button, File > Close Window, ``viewer.close()``), after napari accepted the close
    (a close button's close may be refused in a dialog). Keeps no reference to the widget or
    the window, so neither outlives its close."""

    def __init__(self, window: QWidget, life: Lifetime) -> None:
        super().__init__(window)
        self.life = life
        window.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:
        if event.type() == QEvent.Close and obj is self.parent():
            if event.spontaneous():  # napari may still ask: look once the close is decided
                QTimer.singleShot(0, self._check)
            else:  # programmatic: napari asked before sending it
                self.life()
        return False

    def _check(self) -> None:
        try:
            shown = self.parent().isVisible()
        except (RuntimeError, AttributeError):  # the window is gone already
            shown = False
        if not shown:
            self.life()


def room_in_pool() -> None:
    """Make sure the thread pool has a thread for a joint run beside the live worker (the
    global pool has as many threads as cores, which may be 1 or 2)."""
    from qtpy.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    need = pool.activeThreadCount() + 2
    if pool.maxThreadCount() < need:
        pool.setMaxThreadCount(need)


def make_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """A napari worker running ``fn(*args)``, not started, its errors sent to ``errored``
    only (the widget makes them notifications, not tracebacks); room made for it in the
    thread pool."""
    from napari.qt.threading import create_worker

    room_in_pool()
    return create_worker(fn, *args, _start_thread=False, _ignore_errors=True)


def notify_error(exc: BaseException, what: str) -> None:
    """One notification in the viewer: the one-line message for user errors; anything else as
    an error notification that keeps its traceback (napari's "View Traceback")."""
    from napari.utils.notifications import ErrorNotification, notification_manager, show_error

    if isinstance(exc, UsageError):
        show_error(f"usdehaze {what}: {exc}")
    else:
        notification_manager.dispatch(ErrorNotification(exc))


def status_label() -> QLabel:
    """The status line under a form: empty, wrapping long messages."""
    label = QLabel("")
    label.setWordWrap(True)
    return label


def fill_combo(combo: QComboBox, names: list[str], keep: bool = True) -> None:
    """Put ``names`` in ``combo`` without signals; the current name stays chosen while it is
    there (``keep``)."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if keep and current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)


class ActivityBar:
    """A run's bar in napari's activity panel (``napari.utils.progress``), beside the dock's
    own: made when a run starts, moved with its steps, closed when it ends or the window closes.
    Plain Python, so the widget's Lifetime may close it after Qt deleted the widget."""

    def __init__(self) -> None:
        self.bar: Any = None

    def start(self, desc: str) -> None:
        from napari.utils import progress

        self.close()
        self.bar = progress(total=0, desc=desc)  # total 0: busy until the first step

    def describe(self, desc: str) -> None:
        if self.bar is not None:
            self.bar.set_description(desc)

    def step(self, value: int, maximum: int, desc: str) -> None:
        bar = self.bar
        if bar is None:
            return
        if bar.total != maximum:
            bar.total = maximum
        bar.set_description(desc)
        bar.update(value - bar.n)

    def close(self) -> None:
        bar, self.bar = self.bar, None
        if bar is not None:
            bar.close()


def bind_keys(viewer: Any, keys: dict[str, Callable[[], Any]], life: Lifetime) -> None:
    """Bind each key (napari's spelling, ``"Shift-D"``) on ``viewer`` to its action, which runs
    only while the widget lives (the viewer keeps the binding after a dock is closed)."""

    def bound(action: Callable[[], Any]) -> Callable[[Any], None]:
        def pressed(viewer: Any) -> None:
            if not life.closed:
                action()

        return pressed

    for key, action in keys.items():
        viewer.bind_key(key, bound(action), overwrite=True)


def show_scale_bar(viewer: Any) -> None:
    """napari's scale bar on: in millimetres, the units the plugin's layers carry (napari
    takes the scale bar's unit from the layers' ``units``)."""
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9; viewer.scale_bar before
    scale_bar = canvas.overlays.scale_bar if canvas is not None else viewer.scale_bar
    scale_bar.visible = True
