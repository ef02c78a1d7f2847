"""The quality pin's unseen acquisition, with more frames: the corpus's first validation
acquisition (a P4-like probe) simulated at a fresh seed the corpus never used.

    python pipelines/make_unseen.py --frames 12 --out runs/unseen12   # ~3 min on 2 cores
    usdehaze evaluate --cases runs/unseen12/val --frames 12

Its first 4 frames are tests/test_quality.py's (haze -6, -12, -6, -12 dB under the tissue,
seed 424 242; the test makes them with :func:`task`), the next 8 add the weakest level: -18 dB
three times, then -12 dB three times and -6 dB twice, so 12 frames hold 3/5/4 frames at
-18/-12/-6 dB. Each frame's draws depend on those before it, so the 4-frame figures are the
first 4 of the 12.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SEED = 424_242  # not a corpus seed: the corpus draws its own from its config
LEVELS = (-6.0, -12.0, -6.0, -12.0, -18.0, -18.0, -18.0, -12.0, -12.0, -12.0, -6.0, -6.0)


def task(frames: int):
    """The corpus Task of the first ``frames`` frames (1 to len(LEVELS))."""
    from usdehaze.ultrasound.corpus.acquisition import VALIDATION
    from usdehaze.ultrasound.corpus.build import Task

    if not 1 <= frames <= len(LEVELS):
        raise ValueError(f"--frames {frames}: expected 1 to {len(LEVELS)}")
    return Task("val", VALIDATION[0].to_dict(), LEVELS[:frames], seed=SEED)


def main() -> int:
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.corpus.build import run_task

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path("runs/unseen12"))
    args = ap.parse_args()
    try:
        t = task(args.frames)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(run_task(t, args.out))
    return 0


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main, needs=["pymust"], what="python pipelines/make_unseen.py")
