"""Physics-based training and validation corpus for the ultrasound priors.

Tissue echoes come from a point-spread-function model whose PSFs PyMUST (SIMUS + delay-and-sum)
computes per acquisition, depth and angle; haze comes from multipath reverberation and off-axis
clutter simulated in the channel data with SIMUS and beamformed like the tissue. Acquisitions
(probe, transmit, apodisation, sector, depth, grid) and anatomy are drawn at random; the
validation split uses acquisitions and reverberation geometries the training split never uses.
Needs the ``sim`` extra (pymust).
"""
