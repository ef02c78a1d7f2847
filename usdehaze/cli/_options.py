"""Command-line options shared by ``run`` and ``run-many`` (one definition, one help text)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _model_help() -> str:
    """--model's help, from the registered data models (usdehaze.ultrasound.models)."""
    from usdehaze.ultrasound.dehaze import DehazeConfig
    from usdehaze.ultrasound.models import DATA_MODELS

    default = DehazeConfig.model
    said = [
        f"{n} ({'default; ' if n == default else ''}{m.summary})"
        for n, m in sorted(DATA_MODELS.items(), key=lambda kv: kv[0] != default)
    ]
    return "Data model for joint: " + ", ".join(said[:-1]) + f" or {said[-1]}."


def gamma_help() -> str:
    """--gamma's help: the data models that read γ."""
    from usdehaze.ultrasound.models import DATA_MODELS

    names = [n for n, m in DATA_MODELS.items() if "gamma" in m.params]
    return f"Dehazing strength γ ({' and '.join(names)} models)."


Key = Annotated[str | None, typer.Option("--key", help="Dataset to read when several fit.")]
Frames = Annotated[
    str | None, typer.Option("--frames", help="START:STOP or an index (default all).")
]
Steps = Annotated[int | None, typer.Option("--steps", help="Sampler steps.")]
Solver = Annotated[
    str | None, typer.Option("--solver", help="Prior step: em (default), ddim or heun.")
]
Samples = Annotated[
    int | None,
    typer.Option("--samples", help="Posterior samples per frame (std saved when > 1)."),
]
Seed = Annotated[int | None, typer.Option("--seed", help="Random seed (frame i: seed + i).")]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        help=_model_help(),
    ),
]
Precision = Annotated[
    str | None,
    typer.Option(
        "--precision", help="Network precision: auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16."
    ),
]
CudaGraphs = Annotated[
    bool | None,
    typer.Option(
        "--cuda-graphs/--no-cuda-graphs",
        help="Compile the networks as CUDA graphs (torch.compile reduce-overhead; on CPU a plain compile).",
    ),
]
DynamicRange = Annotated[
    float | None,
    typer.Option(
        "--dynamic-range",
        help="dB kept below each frame's maximum (default 60): the log models' input scale and the "
        "result's clip; dB priors must be trained with the same.",
    ),
]
Batch = Annotated[int | None, typer.Option("--batch", help="Frames per sampler batch.")]
Device = Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")]
Config = Annotated[
    Path | None,
    typer.Option("--config", help="YAML with DehazeConfig keys (configs/dehaze_default.yaml)."),
]
TissuePrior = Annotated[
    Path | None, typer.Option("--tissue-prior", help="Tissue prior (.safetensors + .json).")
]
HazePrior = Annotated[
    Path | None, typer.Option("--haze-prior", help="Haze prior (.safetensors + .json).")
]
Priors = Annotated[
    Path | None,
    typer.Option(
        "--priors",
        help="Folder with both priors, e.g. from usdehaze adapt (--tissue-prior/--haze-prior override one).",
    ),
]
Student = Annotated[
    Path | None,
    typer.Option(
        "--student",
        help="Method fast: the distilled student (.safetensors + .json); default the --priors "
        "folder's student_iq, else the shipped one.",
    ),
]
Method = Annotated[
    str | None,
    typer.Option(
        "--method",
        help="joint (the sampler, default), fast (its one-pass student), dps, pigdm-gauss or bm3d.",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Strict = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse (exit 2, nothing written) a scan that looks unlike the priors' training data, instead of warning.",
    ),
]
