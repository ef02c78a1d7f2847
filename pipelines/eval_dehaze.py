"""Dehazing quality table on held-out simulated cardiac frames (see usdehaze.ultrasound.evaluate).

python pipelines/eval_dehaze.py [--frames 20] [--steps 30] [--tissue-prior P --haze-prior P]
"""

from __future__ import annotations

import argparse
import json

from usdehaze.ultrasound.dehaze import DehazeConfig
from usdehaze.ultrasound.evaluate import default_methods, evaluate, markdown


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument(
        "--config", type=json.loads, default={}, help="JSON overrides, e.g. '{\"steps\": 20}'"
    )
    ap.add_argument("--only", nargs="*", default=None, help="method names to run (substrings)")
    ap.add_argument("--json", default=None, help="write the table as JSON here")
    args = ap.parse_args()
    base = DehazeConfig.from_dict({"device": "cpu", **args.config})
    methods = default_methods(base)
    if args.only:
        methods = {k: v for k, v in methods.items() if any(o in k for o in args.only)}
    table = evaluate(methods, args.frames)
    print(markdown(table))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=2)


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main)
