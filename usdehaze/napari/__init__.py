"""usdehaze's napari plugin (npe2): reader, writer, sample data, Dehaze and gCNR widgets.

Declared in ``napari.yaml``; napari and Qt are imported only by the submodules napari loads, so
``import usdehaze`` (and this package) stays free of them.
"""
