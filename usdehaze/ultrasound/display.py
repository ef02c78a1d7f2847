"""The display map of scan-converted B-mode: grey levels (as a scanner shows them) ↔ dB.

Clinical scanners export log-compressed images: a grey level g ∈ [0, G] (G = 255 for 8 bits)
shows 20·log10 of the envelope over a dynamic range DR below the display's full scale. The map
here is the plain linear-in-dB one, dB = (g / G − 1)·DR; a file that states its dynamic range
sets DR, else ``DEFAULT_DYNAMIC_RANGE`` (60 dB: the middle of the 40–80 dB echo presets, and the
dynamic range the project's dB priors and results use). Grey maps, gain and gamma beyond that are
what the B-mode priors were trained to see (the display chains of their corpus), not inverted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

DEFAULT_DYNAMIC_RANGE = 60.0


@dataclass(frozen=True)
class DisplayMap:
    """Grey levels ↔ dB: ``dynamic_range`` dB shown over ``levels`` grey levels; ``source`` says
    where the dynamic range came from ("default" or the file's key)."""

    dynamic_range: float = DEFAULT_DYNAMIC_RANGE
    levels: int = 255
    source: str = "default"

    def to_db(self, grey: np.ndarray) -> np.ndarray:
        """Grey levels (any shape) → dB in [-DR, 0], float32 (0 dB = the display's full scale)."""
        g = np.clip(np.asarray(grey, dtype=np.float32), 0, self.levels)
        return ((g / self.levels - 1.0) * self.dynamic_range).astype(np.float32)

    def to_grey(self, db: np.ndarray) -> np.ndarray:
        """dB (any shape) → grey levels rounded to integers in [0, levels], as uint8/uint16."""
        g = (np.asarray(db, dtype=np.float64) / self.dynamic_range + 1.0) * self.levels
        dtype = np.uint8 if self.levels <= 255 else np.uint16
        return np.clip(np.rint(g), 0, self.levels).astype(dtype)

    def assuming(self, dynamic_range: float) -> DisplayMap:
        """This map, with ``dynamic_range`` in place of an assumed (default) range: a run's
        or a command's --dynamic-range sets what the file did not say (source "run")."""
        if self.source != "default":
            return self
        return replace(self, dynamic_range=float(dynamic_range), source="run")

    def record(self) -> dict[str, object]:
        """What a result records of it (``display`` attribute)."""
        return {
            "map": "linear-db",
            "dynamic_range": float(self.dynamic_range),
            "levels": int(self.levels),
            "source": self.source,
        }
