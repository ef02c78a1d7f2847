"""``python -m usdehaze`` runs the CLI (also under torchrun)."""

from usdehaze.cli import main

if __name__ == "__main__":
    main()
