"""usdehaze.natural."""
