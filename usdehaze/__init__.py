"""usdehaze: remove structured noise with two jointly sampled diffusion priors.

Importing the package is cheap: torch, napari and Qt are only imported by the
submodules that need them.
"""

from usdehaze.errors import UsageError

__version__ = "0.1.0"

__all__ = ["UsageError", "__version__"]
