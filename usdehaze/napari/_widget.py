"""The plugin's dock widgets (npe2 ``widgets`` contributions)."""

from usdehaze.napari._dehaze_widget import DehazeWidget
from usdehaze.napari._gcnr_widget import GcnrWidget

__all__ = ["DehazeWidget", "GcnrWidget"]
