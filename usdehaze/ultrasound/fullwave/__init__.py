"""Independent validation scans from a full-wave acoustic solver (issue 28): reverberation that
arises from the wave equation in chest-wall layers, not from the corpus's convolution model.

``solver``: a 2-D k-space pseudo-spectral solver of linear acoustics (torch, CPU); ``scan``: a
phased array's diverging-wave transmit, receive, I/Q and delay-and-sum onto a polar grid;
``phantom``: apical hearts under layered chest walls; ``frame``: one frame's hazy and
tissue-only I/Q as a corpus sample. See docs/fullwave.md.
"""
