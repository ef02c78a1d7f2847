"""usdehaze.napari."""
