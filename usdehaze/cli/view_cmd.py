"""``usdehaze view``: open a scan or result file in napari with the usdehaze widgets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from usdehaze.cli._app import app


def has_display() -> bool:
    """Whether Qt can open a window here (see :func:`display_problem`)."""
    return display_problem() is None


def display_problem() -> str | None:
    """Why Qt cannot open a window (None when it can), found before Qt is imported: Qt aborts
    the process when DISPLAY or WAYLAND_DISPLAY names no server, and napari's canvas cannot
    draw with QT_QPA_PLATFORM=offscreen. macOS and Windows always have a display."""
    import os
    import sys

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.split(":")[0] in ("offscreen", "minimal"):
        return f"QT_QPA_PLATFORM={platform} draws no window napari can use; unset it"
    if sys.platform in ("darwin", "win32") or platform:
        return None
    wayland, display = os.environ.get("WAYLAND_DISPLAY"), os.environ.get("DISPLAY")
    if not (wayland or display):
        return "neither DISPLAY nor WAYLAND_DISPLAY is set"
    if wayland:
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        socket_path = wayland if os.path.isabs(wayland) else os.path.join(runtime, wayland)
        if _answers(socket_path):
            return None
    if display and _x_server_answers(display):
        return None
    said = [
        f"DISPLAY={display}" if display else "",
        f"WAYLAND_DISPLAY={wayland}" if wayland else "",
    ]
    return f"no display server answers at {' or '.join(s for s in said if s)}"


def _answers(path: str) -> bool:
    """A Unix socket at ``path`` that accepts a connection (within 2 s)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def _x_server_answers(display: str) -> bool:
    """An X server behind DISPLAY ([host]:N[.screen]): its local socket, else TCP 6000+N."""
    import re
    import socket

    m = re.fullmatch(r"(?:unix)?([^:]*):(\d+)(?:\.\d+)?", display)
    if m is None:
        return False
    host, number = m.group(1), int(m.group(2))
    if host in ("", "unix") and _answers(f"/tmp/.X11-unix/X{number}"):
        return True
    if host in ("", "unix") and _answers(f"\0/tmp/.X11-unix/X{number}"):  # abstract socket
        return True
    try:
        socket.create_connection((host or "localhost", 6000 + number), timeout=2).close()
    except OSError:
        return False
    return True


QT_PROBE = "from qtpy.QtWidgets import QApplication; QApplication([])"


def qt_probe(timeout: float) -> tuple[int, list[str]] | None:
    """Qt's application started in a child process (Qt aborts the whole process when it
    cannot): its exit status and the non-blank lines of its stderr, or None when it did not
    finish within ``timeout`` seconds. Also the test suite's check for a display."""
    import subprocess
    import sys

    try:
        probe = subprocess.run(
            [sys.executable, "-c", QT_PROBE], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None
    return probe.returncode, [ln.strip() for ln in probe.stderr.splitlines() if ln.strip()]


def qt_failed(timeout: float, explain: Callable[[int, list[str]], str]) -> str | None:
    """None when :func:`qt_probe` starts Qt within ``timeout`` seconds; else why not: that it
    did not start in time, or ``explain(exit status, stderr lines)``. ``usdehaze view`` and the
    test suite word the failure each for their reader."""
    probe = qt_probe(timeout)
    if probe is None:
        return f"Qt did not start within {timeout:g} s"
    code, lines = probe
    return None if code == 0 else explain(code, lines)


def _xcb_hint(code: int, lines: list[str]) -> str:
    """The stderr line naming xcb or a plugin (else the last), and the libraries to install."""
    said = next((ln for ln in lines if "xcb" in ln or "plugin" in ln), lines[-1] if lines else "")
    hint = " (install libxcb-cursor0 and the other xcb libraries)" if "xcb" in said else ""
    return f"Qt cannot open a window: {said[:200] or f'exit status {code}'}{hint}"


def qt_problem() -> str | None:
    """Why Qt cannot open a window here, or None: tried in a child process, since Qt aborts
    the whole process when it cannot (SIGABRT, e.g. without libxcb-cursor0, although a
    DISPLAY is set). Linux only (elsewhere Qt brings its platform plugins)."""
    import sys

    if not sys.platform.startswith("linux"):
        return None
    return qt_failed(60, _xcb_hint)


class Interrupts:
    """SIGINT and SIGTERM while napari starts or runs: recorded and the Qt application told
    to quit, not raised (an exception raised inside a napari callback was swallowed, and the
    process then ended on neither signal); a timer lets Python see them while Qt's loop runs.
    ``done()`` hands the first one to the previous handler (exit 130 or 143)."""

    def __init__(self) -> None:
        import signal

        self.got: list[int] = []
        self.old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        self.timer = None
        for s in self.old:
            signal.signal(s, self._on)

    viewer: Any = None  # once open: closed by the first signal

    def _on(self, signum: int, frame: object) -> None:
        self.got.append(signum)
        if len(self.got) == 1 and self.viewer is not None:
            from qtpy.QtCore import QTimer

            # not from inside the handler (it may interrupt Qt mid-paint: that crashed)
            QTimer.singleShot(0, self._quit)

    def _quit(self) -> None:
        from qtpy.QtWidgets import QApplication

        try:
            self.viewer.close()
        finally:
            app = QApplication.instance()
            if app is not None:
                app.quit()

    def wake(self) -> None:
        """While Qt's loop runs, give Python a moment every 200 ms to run the handlers."""
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.timeout.connect(lambda: None)
        self.timer.start(200)

    def done(self) -> None:
        """Restore the handlers; a signal received is handed to its previous handler."""
        import signal

        if self.timer is not None:
            self.timer.stop()
        for s, handler in self.old.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if self.got:
            handler = self.old.get(self.got[0])
            if callable(handler):
                handler(self.got[0], None)
            raise KeyboardInterrupt


@app.command()
def view(
    file: Path = typer.Argument(..., help="Scan (HDF5/zarr/UFF) or usdehaze result file."),
    roi: Path = typer.Option(
        None, "--roi", help="roi.json for the gCNR widget (default: FILE's .roi.json if present)."
    ),
) -> None:
    """Open FILE in napari with the Dehaze and gCNR widgets docked (needs usdehaze[napari])."""
    from usdehaze.errors import UsageError

    if not file.exists():
        raise UsageError(f"{file}: no such file")
    if roi is not None and not roi.is_file():
        raise UsageError(f"{roi}: no such ROI file")
    problem = display_problem()  # before Qt is imported: without a display Qt aborts
    if problem is not None:
        raise UsageError(
            f"{file}: usdehaze view needs a display ({problem}); "
            f"for a figure without one: usdehaze show {file} -o figure.png"
        )
    if roi is not None:  # a broken roi.json: one line now, not a traceback inside napari
        from usdehaze.ultrasound.roi import load_roi

        load_roi(roi)
    problem = qt_problem()
    if problem is not None:
        raise UsageError(f"{file}: usdehaze view: {problem}")
    interrupts = Interrupts()
    try:
        try:
            import napari
        except ImportError:
            raise UsageError("usdehaze view needs napari: pip install 'usdehaze[napari]'") from None
        from usdehaze.napari._launch import open_viewer
        from usdehaze.napari._reader import check_readable

        check_readable(file)  # the reason usdehaze info gives, before any window opens
        if not interrupts.got:
            viewer = interrupts.viewer = open_viewer(file, roi)
            interrupts.wake()
            if interrupts.got:  # during start-up: the window closes at once
                viewer.close()
            else:
                napari.run()
                from usdehaze.napari._launch import finish_workers

                finish_workers()  # a worker still running at exit aborted the process
    finally:
        interrupts.done()
