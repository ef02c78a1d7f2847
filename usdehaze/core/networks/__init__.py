"""usdehaze.core.networks."""
