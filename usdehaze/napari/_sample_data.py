"""Sample data: the embedded demo scan (simulated hazy cardiac loop) with its regions, and its
ground truth."""

from __future__ import annotations

import numpy as np

from usdehaze.napari._layers import image_layer_data
from usdehaze.napari._reader import scan_layer_data, scan_native
from usdehaze.ultrasound.logcomp import DEFAULT_DYNAMIC_RANGE, envelope, to_db


def demo_scan() -> list[tuple]:
    """The hazy demo scan as a B-mode layer, with its regions (``demo_scan.roi.json``) as a
    ROI layer the gCNR widget measures."""
    from usdehaze.napari._roi_file import roi_layer_data
    from usdehaze.ultrasound.simulate import demo_scan_path

    path = demo_scan_path()
    return [*scan_layer_data(path), roi_layer_data(path.with_suffix(".roi.json"))]


def demo_truth() -> list[tuple]:
    """Ground-truth tissue and haze of the demo scan, in dB relative to the hazy frame maximum
    (the reference the input uses, so levels compare directly with a dehazing result)."""
    from usdehaze.ultrasound.io import load_scan
    from usdehaze.ultrasound.simulate import demo_scan_path

    path = demo_scan_path()
    dr = DEFAULT_DYNAMIC_RANGE
    with load_scan(path) as hazy:
        hazy_iq = hazy.frames(0, hazy.n_frames)
        refs = envelope(hazy_iq).reshape(hazy.n_frames, -1).max(axis=1)
        input_db = to_db(hazy_iq, dr)
    out = []
    for key in ("tissue", "haze"):
        with load_scan(path, key) as scan:
            iq = scan.frames(0, scan.n_frames)
            db = np.stack([to_db(iq[i : i + 1], dr, float(r))[0] for i, r in enumerate(refs)])
            native = scan_native(
                scan,
                db,
                role=key,
                dynamic_range=dr,
                group=f"{path}:truth",
                input_db=input_db,
                attrs={"layout": scan.layout, "key": scan.key, "ground_truth": True},
            )
        out.append(image_layer_data(native, f"demo {key} (truth)"))
    return out
