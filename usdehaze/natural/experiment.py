"""One natural-image experiment from a YAML config: data, noise, task, priors and baselines
(trained or loaded), every method on the same measurements, then tables and a figure.

    usdehaze experiment configs/natural_small.yaml

writes ``OUT/results.md``, ``results.csv``, ``per_image.csv``, ``figure.png`` and keeps the
trained models under ``OUT/priors`` and ``OUT/baselines`` (a rerun reuses them; ``models_dir``
points another experiment, e.g. an out-of-distribution variant, at the same models).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from usdehaze.errors import UsageError

if TYPE_CHECKING:
    from usdehaze.natural.methods import Context

TOP_KEYS = {
    "name",
    "out",
    "seed",
    "size",
    "channels",
    "threads",
    "device",
    "batch",
    "signal",
    "noise",
    "task",
    "priors",
    "methods",
    "figure",
    "paper",
    "models_dir",
}


def _section(cfg: dict, key: str, source: str, required: bool = True) -> dict:
    val = cfg.get(key)
    if val is None and not required:
        return {}
    if not isinstance(val, dict):
        raise UsageError(f"{source}: key '{key}': expected a mapping")
    return val


def _no_null_sections(cfg: dict[str, Any], source: str) -> None:
    """A section given with nothing under it (``priors:`` whose settings lost their indent) is
    one line, not the defaults run without a word (issue 31 item 6); ``{}`` asks for them."""
    empty = "expected a mapping, got nothing (an empty section: indent its settings under it, or write {} for the defaults)"
    for key in ("signal", "noise", "task", "methods", "priors", "figure", "paper"):
        if key in cfg and cfg[key] is None:
            raise UsageError(f"{source}: key '{key}': {empty}")
    for key, subs in (
        ("signal", ("train", "test")),
        ("noise", ("train", "test")),
        ("priors", ("sde", "signal", "noise")),
        ("methods", tuple(cfg.get("methods") or ())),
    ):
        sec = cfg.get(key)
        for sub in subs if isinstance(sec, dict) else ():
            if sub in sec and sec[sub] is None:
                raise UsageError(f"{source}: key '{key}.{sub}': {empty}")


def validate(cfg: dict[str, Any], source: str) -> None:
    """Top-level keys, sections and method names; deeper keys are checked where they are used."""
    from usdehaze.natural.methods import METHODS

    unknown = set(cfg) - TOP_KEYS
    if unknown:
        raise UsageError(
            f"{source}: key '{sorted(unknown)[0]}': unknown (expected one of {sorted(TOP_KEYS)})"
        )
    _no_null_sections(cfg, source)
    for key in ("signal", "noise", "task", "methods"):
        _section(cfg, key, source)
    for key in ("train", "test"):
        if not isinstance(cfg["signal"].get(key), dict):
            raise UsageError(
                f"{source}: key 'signal.{key}': expected a dataset mapping {{kind: ..., count: ...}}"
            )
    bad = set(cfg["methods"]) - set(METHODS)
    if bad:
        raise UsageError(
            f"{source}: key 'methods.{sorted(bad)[0]}': unknown method (expected {', '.join(METHODS)})"
        )
    if not cfg["methods"]:
        raise UsageError(f"{source}: key 'methods': expected at least one method")
    for name, mcfg in cfg["methods"].items():
        if mcfg is not None and not isinstance(mcfg, dict):
            raise UsageError(f"{source}: key 'methods.{name}': expected a mapping of settings")
    _check_scalars(cfg, source)
    _check_before_work(cfg, source)


def _check_before_work(cfg: dict[str, Any], source: str) -> None:
    """What is used only after data loads or a prior trains, checked first (a negative count,
    a zero width, a string step count: one line before minutes of work, not after)."""
    from usdehaze import limits
    from usdehaze.core.training import config_from_dict
    from usdehaze.natural.datasets import check_spec
    from usdehaze.natural.models import prior_train_config

    for key in ("train", "test"):
        check_spec(cfg["signal"][key], f"{source}: signal.{key}")
        if cfg["noise"].get("kind") == "images" and isinstance(cfg["noise"].get(key), dict):
            check_spec(cfg["noise"][key], f"{source}: noise.{key}")
    if "train_count" in cfg["noise"]:
        limits.integer(cfg["noise"]["train_count"], f"{source}: key 'noise.train_count'", minimum=1)
    figure = cfg.get("figure")
    if isinstance(figure, dict) and "rows" in figure:
        limits.integer(figure["rows"], f"{source}: key 'figure.rows'", minimum=1, maximum=1000)
    priors = cfg.get("priors") if isinstance(cfg.get("priors"), dict) else {}
    sde = priors.get("sde", {"kind": "ve", "sigma": 25.0})
    for name in ("signal", "noise"):
        pcfg = priors.get(name)
        if pcfg is None or (isinstance(pcfg, dict) and pcfg.get("path")):
            continue
        if not isinstance(pcfg, dict):
            raise UsageError(f"{source}: key 'priors.{name}': expected a mapping, got {pcfg!r}")
        config_from_dict(
            prior_train_config(name, pcfg, sde, Path("."), cfg.get("threads")),
            f"{source}: priors.{name}",
        )


def _check_scalars(cfg: dict[str, Any], source: str) -> None:
    """Top-level scalar keys have the type and range they need (``size: abc`` is one line)."""
    from usdehaze import limits

    def where(key: str) -> str:
        return f"{source}: key '{key}'"

    for key in ("name", "out", "device", "models_dir"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise UsageError(f"{where(key)}: expected a string, got {cfg[key]!r}")
    if "seed" in cfg:
        limits.seed(cfg["seed"], where("seed"))
    if "size" in cfg:
        limits.integer(cfg["size"], where("size"), minimum=8, maximum=1024)
    if "channels" in cfg:
        limits.integer(cfg["channels"], where("channels"), minimum=1, maximum=4)
    if "batch" in cfg:
        limits.integer(cfg["batch"], where("batch"), minimum=1, maximum=4096)
    if cfg.get("threads") is not None:
        limits.integer(cfg["threads"], where("threads"), minimum=1, maximum=1024)
    for key in ("priors", "figure", "paper"):
        if cfg.get(key) is not None and not isinstance(cfg[key], (dict, list, str)):
            raise UsageError(f"{where(key)}: expected a mapping, got {cfg[key]!r}")
    sde = (cfg.get("priors") or {}).get("sde") if isinstance(cfg.get("priors"), dict) else None
    if sde is not None:
        from usdehaze.core.sde import sde_from_config

        sde_from_config(sde, where("priors.sde"))


def _noise_sources(cfg: dict, size: int, channels: int, shape: tuple[int, int, int], source: str):
    """(training noise array, test noise source) for the configured structured noise."""
    from usdehaze.natural.datasets import load_images
    from usdehaze.natural.noises import build_noise

    ncfg = _section(cfg, "noise", source)
    seed = int(cfg.get("seed", 0))
    if ncfg.get("kind") == "images":
        for key in ("train", "test"):
            if not isinstance(ncfg.get(key), dict):
                raise UsageError(
                    f"{source}: key 'noise.{key}': kind 'images' needs a dataset mapping"
                )
        if shape != (channels, size, size):
            raise UsageError(
                f"{source}: key 'noise.kind': image noise needs a denoising or blend task"
            )
        train = load_images(ncfg["train"], size, channels, source=f"{source}: noise.train")
        test_imgs = load_images(ncfg["test"], size, channels, source=f"{source}: noise.test")
        test = build_noise({**ncfg, "kind": "images"}, shape, test_imgs, f"{source}: noise")
        return train, test
    train_src = build_noise(
        {k: v for k, v in ncfg.items() if k != "translate"}, shape, None, f"{source}: noise"
    )
    train = train_src.sample(int(ncfg.get("train_count", 2000)), np.random.default_rng(seed + 101))
    return train, build_noise(ncfg, shape, None, f"{source}: noise")


@dataclass
class _Setup:
    """What the config fixes for one run: folder, sizes, device and the methods to run."""

    out: Path
    seed: int
    size: int
    channels: int
    threads: int | None
    device: Any  # torch.device
    methods: dict[str, dict]


@dataclass
class _Data:
    """Training sets, test images, the task and the measurements every method gets."""

    x_train: np.ndarray
    x_test: np.ndarray
    task: Any  # usdehaze.natural.tasks.Task
    n_train: np.ndarray
    n_test: np.ndarray
    y: Any  # Tensor (N, ...) measurements


def run_experiment(
    cfg: dict[str, Any],
    source: str = "config",
    out: str | Path | None = None,
    only: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every configured method on the same test measurements; returns the summary rows."""
    validate(cfg, source)
    setup = _setup(cfg, source, out, only)
    t_start = time.time()
    data = _measurements(cfg, source, setup)
    ctx = _context(cfg, setup, data, progress)
    t_models = time.time() - t_start
    estimates, seconds = _run_methods(ctx, data.y, setup, int(cfg.get("batch", 16)), progress)
    result = _report(cfg, setup, data, estimates, seconds, t_models, t_start)
    _save_arrays(setup.out, cfg, data, estimates)
    return result


def _setup(
    cfg: dict[str, Any], source: str, out: str | Path | None, only: list[str] | None
) -> _Setup:
    """Threads, the run folder (made), sizes, device and the methods kept by ``--only``."""
    import torch

    from usdehaze.core.device import resolve_device

    threads = cfg.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out or cfg.get("out") or f"runs/{cfg.get('name', 'experiment')}")
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.get("device", "auto"))
    methods = {k: (v or {}) for k, v in cfg["methods"].items() if not only or k in only}
    if only and set(only) - set(cfg["methods"]):
        raise UsageError(
            f"--only {','.join(only)}: not among the config's methods {sorted(cfg['methods'])}"
        )
    seed, size, channels = (
        int(cfg.get("seed", 0)),
        int(cfg.get("size", 64)),
        int(cfg.get("channels", 3)),
    )
    return _Setup(out, seed, size, channels, threads, device, methods)


def _measurements(cfg: dict[str, Any], source: str, setup: _Setup) -> _Data:
    """Signal and noise images, the task, and y = A·x + α·n for the test set."""
    import torch

    from usdehaze.natural.datasets import load_images
    from usdehaze.natural.tasks import build_task

    size, channels, seed = setup.size, setup.channels, setup.seed
    signal = cfg["signal"]
    x_train = load_images(signal["train"], size, channels, source=f"{source}: signal.train")
    x_test = load_images(signal["test"], size, channels, source=f"{source}: signal.test")
    task = build_task(cfg["task"], (channels, size, size), seed, f"{source}: task")
    n_train, n_source = _noise_sources(cfg, size, channels, task.noise_shape, source)
    if task.kind == "cs" and "bm3d" in setup.methods:
        raise UsageError(
            f"{source}: key 'methods.bm3d': BM3D is a denoiser; use lasso for task 'cs'"
        )
    n_test = n_source.sample(len(x_test), np.random.default_rng(seed + 202))
    xt, nt = torch.from_numpy(x_test), torch.from_numpy(n_test)
    y = task.operator.measure(xt, task.to_measurement(nt))
    return _Data(x_train, x_test, task, n_train, n_test, y)


def _context(cfg: dict[str, Any], setup: _Setup, data: _Data, progress: bool) -> Context:
    """The methods' shared context with every model they need, trained into or loaded from
    ``models_dir`` (default: the run folder)."""
    import torch

    from usdehaze.core.sde import sde_from_config
    from usdehaze.natural import methods as M
    from usdehaze.natural import models

    task, device, methods = data.task, setup.device, setup.methods
    noise_mean = torch.from_numpy(data.n_train.mean(0, keepdims=True))
    noise_std = float((data.n_train - data.n_train.mean(0, keepdims=True)).std())
    if task.kind == "cs" and device.type != "cpu":  # keep the m×d matrix where the samplers run
        task.operator.matrix = task.operator.matrix.to(device)
    mdir = Path(cfg.get("models_dir") or setup.out)
    pri = cfg.get("priors") or {}
    sde_cfg = pri.get("sde", {"kind": "ve", "sigma": 25.0})
    ctx = M.Context(task, sde_from_config(sde_cfg), device, noise_mean, noise_std, setup.seed)

    def prior(name: str, images: np.ndarray):
        """A score prior, trained or loaded."""
        opts = dict(pri.get(name) or {})
        return models.score_prior(
            name, images, opts, sde_cfg, mdir, device, setup.threads, progress
        )

    if methods.keys() & {"joint", "pigdm", "dps"}:
        ctx.models["prior_signal"] = prior("signal", data.x_train)
    if "joint" in methods:
        ctx.models["prior_noise"] = prior("noise", data.n_train)
    if "flow" in methods:
        for name, images in (("signal", data.x_train), ("noise", data.n_train)):
            glow = models.glow_model(name, images, methods["flow"], mdir, progress)
            ctx.models[f"glow_{name}"] = glow.to(device)
    if "gan" in methods:
        gan = models.gan_model(data.x_train, methods["gan"], mdir, progress)
        ctx.models["gan"] = gan.to(device)
    return ctx


def _run_methods(
    ctx: Context, y: Any, setup: _Setup, batch: int, progress: bool
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every method on the same y, in batches: estimates and seconds per image."""
    import torch

    from usdehaze.natural import methods as M

    estimates, seconds = {}, {}
    for name, mcfg in setup.methods.items():
        mcfg = (
            {k: v for k, v in mcfg.items() if k not in ("model", "train")}
            if name in ("flow", "gan")
            else dict(mcfg)
        )
        t0, parts = time.time(), []
        for i in range(0, len(y), batch):
            yb = y[i : i + batch].to(setup.device)
            parts.append(M.RUNNERS[name](ctx, yb, mcfg, setup.seed + 1000 + i).detach().cpu())
        estimates[name] = torch.cat(parts).numpy()
        seconds[name] = (time.time() - t0) / len(y)
        if progress:
            print(f"{name}: {seconds[name]:.2f} s/image", flush=True)
    return estimates, seconds


def _report(
    cfg: dict[str, Any],
    setup: _Setup,
    data: _Data,
    estimates: dict[str, np.ndarray],
    seconds: dict[str, float],
    t_models: float,
    t_start: float,
) -> dict[str, Any]:
    """Metrics per image, the tables (markdown, CSV) and the figure."""
    from usdehaze.natural import methods as M
    from usdehaze.natural.report import figure_grid, summarise, write_tables

    task, x_test = data.task, data.x_test
    observed = _observation(task, data.y)
    per_image, lp_note = _per_image(task.kind, observed, x_test, estimates)
    rows = summarise(per_image, seconds)
    labels = {**M.LABELS, "noisy": "Noisy (y)"}
    notes = _notes(cfg, setup, data, lp_note, t_models, t_start)
    header = f"# {cfg.get('name', 'experiment')}: {task.kind} with {cfg['noise'].get('kind')} noise"
    md, csv_path = write_tables(setup.out, rows, per_image, labels, header, notes)
    cols = (
        [("Aᵀy" if task.kind == "cs" else "Noisy", observed)]
        + [(M.LABELS[k], v) for k, v in estimates.items()]
        + [("Ground truth", x_test)]
    )
    psnrs = {M.LABELS[k]: per_image[k]["psnr"] for k in estimates}
    if "noisy" in per_image:
        psnrs["Noisy"] = per_image["noisy"]["psnr"]
    rows_shown = int((cfg.get("figure") or {}).get("rows", 4))
    fig = figure_grid(setup.out / "figure.png", cols, psnrs, rows_shown, header.lstrip("# "))
    return {"rows": rows, "markdown": md, "csv": csv_path, "figure": fig, "out": setup.out}


def _per_image(
    kind: str, observed: np.ndarray, x_test: np.ndarray, estimates: dict[str, np.ndarray]
) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """Metrics per method and image (the noisy input too, unless CS), LPIPS when installed,
    and the note saying whether LPIPS was used."""
    from usdehaze.natural.report import image_metrics, lpips_scorer

    per_image = {"noisy": image_metrics(observed, x_test)} if kind != "cs" else {}
    per_image.update({k: image_metrics(v, x_test) for k, v in estimates.items()})
    scorer, lp_note = lpips_scorer()
    if scorer is not None:
        for k in per_image:
            per_image[k]["lpips"] = scorer(observed if k == "noisy" else estimates[k], x_test)
    return per_image, lp_note


def _notes(
    cfg: dict[str, Any], setup: _Setup, data: _Data, lp_note: str, t_models: float, t_start: float
) -> list[str]:
    """The lines under the table: LPIPS, the data and noise, the times, the paper's figures."""
    noise = cfg["noise"]
    translated = f", translated up to {noise['translate']:.0%}" if noise.get("translate") else ""
    size, channels = setup.size, setup.channels
    notes = [
        lp_note,
        f"{len(data.x_test)} test images, {size}×{size}×{channels}; task {data.task.kind}; "
        f"noise {noise.get('kind')}" + translated,
        f"models trained or loaded in {t_models:.0f} s; total {time.time() - t_start:.0f} s "
        f"on {setup.device}",
    ]
    if cfg.get("paper"):
        notes.append(
            "paper (TMLR 2025) for comparison: "
            + ", ".join(f"{k} {v}" for k, v in cfg["paper"].items())
        )
    return notes


def _save_arrays(
    out: Path, cfg: dict[str, Any], data: _Data, estimates: dict[str, np.ndarray]
) -> None:
    """``estimates.npz`` (x, y, n and every estimate) and ``config.json``, written atomically."""
    from usdehaze.atomic import atomic_path
    from usdehaze.jsonio import dumps

    with atomic_path(out / "estimates.npz") as tmp:
        np.savez_compressed(tmp, x=data.x_test, y=data.y.numpy(), n=data.n_test, **estimates)
    with atomic_path(out / "config.json") as tmp:
        tmp.write_text(dumps(cfg, indent=2))


def _observation(task, y) -> np.ndarray:
    """The noisy input as an image: y itself (denoise, blend), Aᵀy rescaled to A's gain (CS)."""
    import torch

    from usdehaze.core.operators import adjoint_guess

    if task.kind == "cs":
        return adjoint_guess(task.operator, y).clamp(-1, 1).numpy()
    return torch.as_tensor(y).clamp(-1, 1).numpy()


def load_config(path: str | Path) -> dict[str, Any]:
    """Read an experiment YAML (one-line errors naming the file)."""
    from usdehaze.config import read_yaml

    return read_yaml(path)
