"""``usdehaze bench sampler``: speed of the joint sampler per rule, size and batch."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli.bench_cmd import bench_app


@bench_app.command("sampler")
def bench_sampler(
    sizes: list[int] = typer.Option(
        [64], "--size", help="Image side(s); e.g. --size 64 --size 256 (256: minutes on a CPU)."
    ),
    batches: list[int] = typer.Option([1, 4], "--batch", help="Batch size(s)."),
    rules: list[str] = typer.Option(["pigdm", "dps", "projection"], "--rule", help="Rule(s)."),
    steps: int = typer.Option(4, "--steps", help="Timed steps per configuration."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    tissue_prior: Path = typer.Option(
        None, "--tissue-prior", help="Signal prior (default: shipped tissue prior)."
    ),
    haze_prior: Path = typer.Option(
        None, "--haze-prior", help="Noise prior (default: shipped haze prior)."
    ),
    no_plain: bool = typer.Option(False, "--no-plain", help="Skip the plain Algorithm 1 loop."),
) -> None:
    """ms per step and per image for each rule at each size and batch, and the ratio against a
    plain loop of Algorithm 1 (two network evaluations per prior per step).

    The defaults (64×64, batch 1 and 4, three rules) take about 30 s on 2 CPU cores."""
    from usdehaze.core.bench import run
    from usdehaze.core.device import resolve_device
    from usdehaze.core.priors import load_prior
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    for size in sizes:  # the U-Net halves the image 3 times
        if not (8 <= size <= 4096 and size % 8 == 0):
            raise UsageError(f"--size {size}: expected a multiple of 8 from 8 to 4096 (the limit)")
    for b in batches:
        if not 1 <= b <= 1024:
            raise UsageError(f"--batch {b}: expected 1 to 1024 (the limit)")
    if not 1 <= steps <= 10_000:
        raise UsageError(f"--steps {steps}: expected 1 to 10000 (the limit)")
    dev = resolve_device(device)
    sig = load_prior(tissue_prior or WEIGHTS_DIR / "tissue.safetensors", dev)
    noi = load_prior(haze_prior or WEIGHTS_DIR / "haze.safetensors", dev)
    run(
        sig,
        noi,
        sizes,
        batches,
        rules,
        steps,
        dev,
        plain=not no_plain,
        log=typer.echo,
        progress=lambda s: typer.echo(s, err=True),
    )
