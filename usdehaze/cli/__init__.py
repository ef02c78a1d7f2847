"""The ``usdehaze`` command line: thin wrappers that parse arguments, call the library, print.

Each command group lives in its own module and registers itself on :data:`app`. Heavy imports
(torch, matplotlib) happen inside the commands so ``usdehaze --help`` stays fast.
"""

from __future__ import annotations

import sys

# Command modules register themselves on import; keep one line per module.
from usdehaze.cli import (  # noqa: E402,F401
    adapt_cmd,
    bench_cmd,
    bench_dehaze,
    bench_io,
    bench_run,
    bench_sampler,
    evaluate_cmd,
    experiment_cmd,
    gcnr_cmd,
    info_cmd,
    run_cmd,
    run_many_cmd,
    show_cmd,
    simulate_cmd,
    train_cmd,
    view_cmd,
)
from usdehaze.cli._app import app, run_app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: exit 130 after SIGINT and 143 after SIGTERM, each after the
    same clean partial save (SIGTERM is raised as a KeyboardInterrupt subclass)."""
    import signal
    import threading

    from usdehaze.atomic import exit_signals

    main_thread = threading.current_thread() is threading.main_thread()
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        received = exit_signals()
        code = run_app(argv)
    except KeyboardInterrupt:  # one that got past run_app's own handling: still a clean stop
        print("usdehaze: interrupted", file=sys.stderr)
        code = 130
    finally:  # called in-process (tests, scripts): leave the caller's handlers as they were
        for s, handler in old.items():
            if handler is not None:
                signal.signal(s, handler)
    if argv is None and received and main_thread:
        # the console script, interrupted and saved: a late Ctrl-C during the interpreter's
        # own exit (torch unloading; Python resets its handlers there) killed it by SIGINT,
        # exit -2 instead of 130; ignored from here on (Python leaves SIG_IGN in place)
        for s in old:
            signal.signal(s, signal.SIG_IGN)
    if received and code in (0, 1, 130):  # interrupted: never a success, whatever caught it
        code = 143 if received[-1] == signal.SIGTERM else 130
    sys.exit(code)
