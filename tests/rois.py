"""ROI documents (roi.json, version 1) that tests write or parse, made in one place."""

from __future__ import annotations


def rect(lo: list[float], hi: list[float]) -> dict:
    """A rectangle region from corner ``lo`` to corner ``hi``."""
    return {"shape": "rectangle", "min": list(lo), "max": list(hi)}


def circle(center: list[float], radius: float) -> dict:
    """A circle region."""
    return {"shape": "circle", "center": list(center), "radius": radius}


def annulus(center: list[float], inner: float, outer: float) -> dict:
    """An annulus (ring) region."""
    return {"shape": "annulus", "center": list(center), "inner": inner, "outer": outer}


def roi_doc(units: str, *pairs: tuple[str, dict, dict]) -> dict:
    """A roi.json document in ``units`` (px or mm): one pair per ``(name, target, background)``."""
    return {
        "version": 1,
        "units": units,
        "pairs": [{"name": n, "target": t, "background": b} for n, t, b in pairs],
    }


def px_roi(*pairs: tuple[str, dict, dict]) -> dict:
    """A roi.json document in pixels (:func:`roi_doc`)."""
    return roi_doc("px", *pairs)


def mm_roi(*pairs: tuple[str, dict, dict]) -> dict:
    """A roi.json document in millimetres (:func:`roi_doc`)."""
    return roi_doc("mm", *pairs)
