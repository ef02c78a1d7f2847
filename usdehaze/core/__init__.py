"""Domain-agnostic diffusion core: SDEs, operators, priors, samplers, training.

Never imports usdehaze.ultrasound, usdehaze.natural, the CLI or napari.
"""
