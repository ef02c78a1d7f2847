"""Shared fixtures: tiny untrained priors saved like the shipped ones, small in-memory scans;
and a display for the GUI (napari/Qt) tests, or one clear reason they are skipped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from usdehaze.core.device import usable_cores
from usdehaze.core.networks import build_network
from usdehaze.core.priors import save_prior
from usdehaze.core.sde import VESDE
from usdehaze.ultrasound.scan import Scan
from usdehaze.ultrasound.simulate import simulate_cardiac

TINY_NET = {"arch": "unet", "base": 8, "mults": [1, 2], "channels": 1}

# A test run started as a background job inherits SIGINT ignored, and so would every child it
# starts (Python leaves an ignored SIGINT ignored): the Ctrl-C tests would then see no Ctrl-C.
# A handler here resets to the default in each child at exec, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# ``pytest -n N`` (pytest-xdist): each worker takes its share of the cores for torch's threads;
# N workers each on all cores would run N x cores threads, and small tensor operations then wait
# on descheduled threads (40x slower was seen with a second job on 2 cores).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    torch.set_num_threads(max(1, usable_cores() // _WORKERS))


def _tiny_pair(d, channels: int, normalisation: dict) -> tuple:
    net_cfg = {**TINY_NET, "channels": channels}
    paths = []
    for i, name in enumerate(("tissue", "haze")):
        torch.manual_seed(i)
        net = build_network(net_cfg)
        for p in net.parameters():  # non-zero output layer so the score is not trivially 0
            p.data.add_(0.01 * torch.randn_like(p))
        paths.append(
            save_prior(d / name, net, network=net_cfg, sde=VESDE(), normalisation=normalisation)
        )
    return tuple(paths)


@pytest.fixture(scope="session")
def tiny_priors(tmp_path_factory):
    """(tissue, haze) prior paths: tiny random networks with the ultrasound dB normalisation."""
    d = tmp_path_factory.mktemp("priors")
    return _tiny_pair(d, 1, {"domain": "db", "dynamic_range": 60})


@pytest.fixture(scope="session")
def tiny_iq_priors(tmp_path_factory):
    """(tissue, haze) prior paths for the iq model: 2 channels (μ-law I, Q)."""
    d = tmp_path_factory.mktemp("iq_priors")
    return _tiny_pair(d, 2, {"domain": "iq-mulaw", "mu": 255})


@pytest.fixture(scope="session")
def tiny_bmode_priors(tmp_path_factory):
    """(tissue, haze) prior paths for the bmode model: 1 channel, display grey levels."""
    d = tmp_path_factory.mktemp("bmode_priors")
    return _tiny_pair(d, 1, {"domain": "bmode-db", "dynamic_range": 60})


def _tiny_student(
    factory, name: str, channels: tuple[int, int], seed: int, meta: dict, bias: float = 0.0
):
    """A tiny fast-method student with (in, out) ``channels`` saved as NAME: untrained but not
    the identity (a small random head, its outputs shifted by ``bias``)."""
    from usdehaze.core.student import OnePassUNet, StudentNet, save_student

    torch.manual_seed(seed)
    net = OnePassUNet(StudentNet(*channels, width=4, levels=2))
    torch.nn.init.normal_(net.head.weight, std=0.01)
    torch.nn.init.constant_(net.head.bias, bias)
    return save_student(factory.mktemp(name) / name, net, {"method": "fast", **meta})


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory):
    """Path of a tiny iq student (dB + μ-law I/Q in)."""
    return _tiny_student(tmp_path_factory, "student_iq", (3, 2), 0, {"dynamic_range": 60.0})


@pytest.fixture(scope="session")
def tiny_bmode_student(tmp_path_factory):
    """Path of a tiny B-mode student (its context view in, the clean view out), darkening by
    about 0.05 of the dynamic range (its gain is never positive: a brightening one does nothing)."""
    meta = {"model": "bmode"}
    return _tiny_student(tmp_path_factory, "student_bmode", (1, 1), 1, meta, bias=-0.05)


def memory_scan(n_frames: int = 3, shape=(48, 32), seed: int = 0) -> Scan:
    """A simulated hazy scan held in memory, in the Scan interface the readers return."""
    sim = simulate_cardiac(n_frames, seed=seed, shape=shape)
    iq = sim.hazy_iq
    return Scan(
        path="memory.h5",
        layout="memory",
        key="hazy",
        n_frames=n_frames,
        shape=shape,
        read=lambda a, b: iq[a:b],
        x=sim.x,
        z=sim.z,
        grid="polar",
        axes=sim.axes,
    )


@pytest.fixture
def small_scan():
    return memory_scan()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# -- GUI tests: a display where one can be had, else skip them (never abort the session) --------
# pytest-xvfb (the test extra) starts Xvfb when it is installed; without the plugin this starts
# Xvfb itself. Whether Qt can then open a window is tried once in a child process, because Qt
# aborts the whole process when it cannot ("Fatal Python error: Aborted"); if it cannot, every
# test marked ``gui`` is skipped with the reason and all other tests still run.
XVFB_SCREEN = "1600x1000x24"  # the layout the widgets are checked at
_gui: dict[str, object] = {"xvfb": None}


def _start_xvfb() -> str | None:
    """Start Xvfb on a free display; its display name, or None when it fails."""
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", XVFB_SCREEN, "-nolisten", "tcp"],
            pass_fds=(w,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()  # Xvfb writes the display number once it is ready
    if not number.isdigit():
        proc.terminate()
        return None
    _gui["xvfb"] = proc
    return f":{number}"


@pytest.hookimpl(trylast=True)  # after pytest-xvfb, which sets DISPLAY when it starts Xvfb
def pytest_configure(config):
    if not sys.platform.startswith("linux") or os.environ.get("DISPLAY"):
        return
    if os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if shutil.which("Xvfb"):
        display = _start_xvfb()
        if display:
            os.environ["DISPLAY"] = display


def pytest_unconfigure(config):
    proc = _gui["xvfb"]
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=10)


def _gui_problem() -> str | None:
    """Why Qt cannot open a window here (None when it can)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
        or os.environ.get("QT_QPA_PLATFORM")
    ):
        return "no display: DISPLAY is unset and Xvfb is not installed (apt-get install xvfb)"
    from usdehaze.cli.view_cmd import qt_failed  # the probe usdehaze view runs

    return qt_failed(120, _qt_hint)


def _qt_hint(code: int, lines: list[str]) -> str:
    """Qt's failure for the test report: the stderr line on a plugin or the display."""
    hint = next((ln for ln in lines if "plugin" in ln or "display" in ln.lower()), None)
    hint = hint or (lines[-1] if lines else f"exit status {code}")
    return f"Qt cannot open a window ({hint[:200]}); .ci/run installs Xvfb and the xcb libraries"


def pytest_collection_modifyitems(config, items):
    """The files holding slow tests first (the order is kept otherwise: under ``pytest -n`` the
    longest files start at once instead of leaving one worker busy after the others are done);
    the GUI tests skipped, with the reason, where Qt cannot open a window."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
    gui = [item for item in items if item.get_closest_marker("gui")]
    if not gui:
        return
    problem = _gui_problem()
    if problem is None:
        return
    mark = pytest.mark.skip(reason=f"GUI tests skipped: {problem}")
    for item in gui:
        item.add_marker(mark)


def pytest_terminal_summary(terminalreporter):
    """One line for the GUI tests skipped and why, from the test reports: under ``pytest -n``
    the workers skip them and this process only sees their reports."""
    head = "GUI tests skipped: "
    reasons = [
        r.longrepr[2].split(head, 1)[1]
        for r in terminalreporter.stats.get("skipped", [])
        if isinstance(r.longrepr, tuple) and head in str(r.longrepr[2])
    ]
    if reasons:
        terminalreporter.write_line(
            f"GUI tests skipped ({len(reasons)}): {reasons[0]}", yellow=True
        )
