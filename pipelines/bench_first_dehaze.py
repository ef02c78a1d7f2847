"""Does the window stay responsive through the first Dehaze of a session? Open napari (1600x1000,
the demo scan), open Plugins > usdehaze > Dehaze, click Dehaze (model logsum, --steps steps, cpu,
the shipped priors or --tissue/--haze) and time the GUI thread with a 10 ms timer from the click
to the run's end.

    python pipelines/bench_first_dehaze.py
    python pipelines/bench_first_dehaze.py --steps 2 --json first.json

Prints the click's own time on the GUI thread, the longest gap of the GUI thread from the click
to the first sampler step (torch, the settings and the priors load meanwhile in the worker) and
over the whole run, the gaps over 100 ms with the status line shown then, and the collector's
full passes (start after the click, duration) that fell in the run. Run it in a fresh process:
it measures a first Dehaze (torch not yet imported). Xvfb is started when there is no display.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path


def bench(args: argparse.Namespace) -> dict:
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from usdehaze.ultrasound.simulate import demo_scan_path

    passes: list[tuple[float, str, int]] = []
    gc.callbacks.append(
        lambda ph, info: passes.append((time.perf_counter(), ph, info["generation"]))
    )
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open(str(demo_scan_path()), plugin="usdehaze")
    app = QApplication.instance()
    out: dict = {}
    ticks: list[float] = []
    statuses: list[tuple[float, str]] = []

    action = dehaze_action(viewer)

    def status(w) -> None:
        if not statuses or statuses[-1][1] != w.status.text():
            statuses.append((time.perf_counter(), w.status.text()))

    def ended(result: str) -> None:
        out.setdefault("result", result)
        out.setdefault("end", time.perf_counter())
        QTimer.singleShot(300, app.quit)

    def open_dock() -> None:  # Plugins > usdehaze > Dehaze, as a user opens it
        action.trigger()
        (w,) = viewer.window.dock_widgets.values()
        w.model.setCurrentText("logsum")
        w.steps.setValue(args.steps)
        w.device.setCurrentText("cpu")
        if args.tissue and args.haze:
            w.tissue_prior.setText(str(args.tissue))
            w.haze_prior.setText(str(args.haze))
        watch = QTimer(w)
        watch.timeout.connect(lambda: status(w))
        watch.start(5)
        w._progress.connect(lambda *a: out.setdefault("first_step", time.perf_counter()))
        w.run_finished.connect(ended)

        def click() -> None:
            out["t0"] = time.perf_counter()
            w.run_button.click()
            out["click_s"] = time.perf_counter() - out["t0"]

        QTimer.singleShot(1500, click)

    tick = QTimer()
    tick.timeout.connect(lambda: ticks.append(time.perf_counter()))
    tick.start(10)
    QTimer.singleShot(500, open_dock)
    QTimer.singleShot(int(args.timeout * 1000), app.quit)
    napari.run()
    if "t0" not in out:
        sys.exit("bench_first_dehaze: the Dehaze button was never clicked")
    return _figures(out, ticks, statuses, passes)


def dehaze_action(viewer) -> object:
    """The Plugins > usdehaze > Dehaze menu action of a napari viewer, as a user finds it."""

    def find(menu):
        for a in menu.actions():
            if a.menu() is not None:
                hit = find(a.menu())
                if hit:
                    return hit
            elif a.text().startswith("Dehaze"):
                return a
        return None

    bar = viewer.window._qt_window.menuBar()
    (plugins,) = [a.menu() for a in bar.actions() if a.text().replace("&", "") == "Plugins"]
    return find(plugins)


def _figures(out: dict, ticks: list[float], statuses: list, passes: list) -> dict:
    """The figures of a run: the GUI thread's gaps from the click (``out["t0"]``) to the first
    step and to the end, the gaps over 100 ms with the status shown, the full collections."""
    t0, end = out["t0"], out.get("end", float("inf"))
    t = [x for x in ticks if t0 - 0.05 <= x <= end]
    first = [x for x in t if x <= out.get("first_step", float("inf"))]

    def longest(ts: list[float]) -> float:
        return max((b - a for a, b in zip(ts, ts[1:])), default=float("nan"))

    def status_at(s: float) -> str:
        return ([text for ts, text in statuses if ts - t0 <= s] or [""])[-1]

    starts: dict[int, float] = {}
    full = []
    for ts, phase, gen in passes:
        if phase == "start":
            starts[gen] = ts
        elif gen == 2 and t0 <= ts <= end:
            full.append((round(starts[gen] - t0, 2), round(ts - starts[gen], 3)))
    return {
        "result": out.get("result"),
        "click_s": round(out["click_s"], 3),
        "first_step_s": round(out.get("first_step", float("nan")) - t0, 2),
        "max_gap_to_first_step_s": round(longest(first), 3),
        "max_gap_run_s": round(longest(t), 3),
        "gaps_over_100ms": [
            (round(a - t0, 2), round(b - a, 3), status_at(a - t0))
            for a, b in zip(t, t[1:])
            if b - a > 0.1
        ],
        "full_collections": full,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2, help="sampler steps (default 2)")
    p.add_argument("--tissue", type=Path, default=None, help="tissue prior (default: shipped)")
    p.add_argument("--haze", type=Path, default=None, help="haze prior (default: shipped)")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after (s)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    from bench_live import on_a_display

    r = on_a_display(bench, args)
    print(json.dumps(r, indent=1))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main, needs=["napari"])
