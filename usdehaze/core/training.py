"""Denoising score matching (eq. 5) with λ(t) = β_t², Adam, EMA, clipping, checkpoints, resume, DDP.

Also what fine-tuning needs: start from a prior's weights, a time budget, and a loss restricted
to masked pixels (a sampler that returns masks, such as MaskedPatchSampler).

One global batch is drawn from one seeded generator on every rank and each rank keeps its shard,
so N processes with batch B/N reproduce one process with batch B (up to float summation order).
"""

from __future__ import annotations

import copy
import csv
import gc
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from usdehaze.core.data import MaskedPatchSampler, PatchSampler, load_array
from usdehaze.core.distributed import finish, local_device, world
from usdehaze.core.networks import build_network, count_parameters
from usdehaze.core.priors import NetworkPrior, save_prior
from usdehaze.core.resume import KEPT, capture_rng, restore_rng, stop_after_step
from usdehaze.core.sde import SDE, sde_from_config
from usdehaze.errors import UsageError, first_line


def dsm_loss(score, x0: Tensor, sde: SDE, t: Tensor, z: Tensor) -> Tensor:
    """E‖β_t s(x_t, t) + z‖² (the σ²-weighted DSM loss) for any score callable."""
    x_t = sde.marginal(x0, t, z)
    beta = sde.beta(t).to(x0).reshape(-1, *([1] * (x0.dim() - 1)))
    return ((beta * score(x_t, t) + z) ** 2).mean()


@dataclass
class TrainConfig:
    """Everything a training run needs; built from YAML by :func:`config_from_dict`."""

    data: dict[str, Any]
    network: dict[str, Any] = field(
        default_factory=lambda: {"arch": "unet", "base": 16, "mults": [1, 2, 4, 4]}
    )
    sde: dict[str, Any] = field(default_factory=lambda: {"kind": "ve", "sigma": 25.0})
    steps: int = 1000
    batch: int = 16
    lr: float = 5e-4
    ema: float = 0.999
    grad_clip: float = 1.0
    warmup: int = 100
    checkpoint_every: int = 250
    log_every: int = 25
    seed: int = 0
    out: str = "runs/train"
    export: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None


def config_from_dict(cfg: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate keys and build a :class:`TrainConfig`; unknown or missing keys are user errors."""
    known = set(TrainConfig.__dataclass_fields__)
    unknown = set(cfg) - known
    if unknown:
        raise UsageError(
            f"{source}: key '{sorted(unknown)[0]}': unknown (expected one of {sorted(known)})"
        )
    if "data" not in cfg or not isinstance(cfg["data"], dict) or "path" not in cfg["data"]:
        raise UsageError(f"{source}: key 'data.path': missing (the training images)")
    _check_train_types(cfg, source)
    try:
        return TrainConfig(**cfg)
    except TypeError as exc:
        raise UsageError(f"{source}: {exc}") from None


def _check_train_types(cfg: dict[str, Any], source: str) -> None:
    """Each key of a training config has the type and range it needs: ``steps: abc`` or
    ``lr: -1`` is one line naming the key, not a traceback from inside the training loop."""

    def where(key: str) -> str:
        return f"{source}: key '{key}'"

    for key in ("data", "network", "sde", "export"):
        if key in cfg and not isinstance(cfg[key], dict):
            raise UsageError(f"{where(key)}: expected a mapping, got {cfg[key]!r}")
    _check_data(cfg["data"], where)
    _check_numbers(cfg, where)
    if "out" in cfg and (not isinstance(cfg["out"], str) or not cfg["out"]):
        raise UsageError(f"{where('out')}: expected a folder name, got {cfg['out']!r}")
    exp = cfg.get("export", {})
    if exp.get("path") is not None and (not isinstance(exp["path"], str) or not exp["path"]):
        raise UsageError(f"{where('export.path')}: expected a file name, got {exp['path']!r}")
    for key in ("normalisation", "data", "training"):
        if key in exp and not isinstance(exp[key], dict):
            raise UsageError(f"{where('export.' + key)}: expected a mapping, got {exp[key]!r}")
    if "sde" in cfg:
        sde_from_config(cfg["sde"], where("sde"))
    if "network" in cfg:
        from usdehaze.core.networks import check_network

        check_network(cfg["network"], where("network"))


def _check_data(data: dict[str, Any], where: Callable[[str], str]) -> None:
    """The ``data`` section: a path, and when given a dataset key, a patch size and flips."""
    from usdehaze import limits

    if not isinstance(data["path"], str) or not data["path"]:
        raise UsageError(
            f"{where('data.path')}: expected a file or folder name, got {data['path']!r}"
        )
    if data.get("key") is not None and not isinstance(data["key"], str):
        raise UsageError(f"{where('data.key')}: expected a dataset name, got {data['key']!r}")
    if data.get("patch") is not None:
        limits.integer(data["patch"], where("data.patch"), minimum=1)
    if "flips" in data and not isinstance(data["flips"], bool):
        raise UsageError(f"{where('data.flips')}: expected true or false, got {data['flips']!r}")


def _check_numbers(cfg: dict[str, Any], where: Callable[[str], str]) -> None:
    """Counts (steps, batch, warmup, checkpoint and log intervals, threads), the learning rate,
    EMA decay (0 <= ema < 1), gradient clip and seed."""
    from usdehaze import limits

    for key, minimum in (("steps", 1), ("batch", 1), ("warmup", 0)):
        if key in cfg:
            limits.integer(cfg[key], where(key), minimum=minimum)
    for key in ("checkpoint_every", "log_every"):
        if key in cfg:
            limits.integer(cfg[key], where(key), minimum=1)
    if cfg.get("threads") is not None:
        limits.integer(cfg["threads"], where("threads"), minimum=1)
    if "lr" in cfg:
        limits.number(cfg["lr"], where("lr"), positive=True)
    if "ema" in cfg:
        ema = limits.number(cfg["ema"], where("ema"), minimum=0.0)
        if ema >= 1:
            raise UsageError(f"{where('ema')}: expected 0 <= ema < 1, got {ema:g}")
    if "grad_clip" in cfg:
        limits.number(cfg["grad_clip"], where("grad_clip"), minimum=0.0)
    if "seed" in cfg:
        limits.seed(cfg["seed"], where("seed"))


class Trainer:
    """Train a score network by DSM; checkpoints to ``out/checkpoint.pt``; exports the EMA prior.

    ``sampler``: patches from memory instead of ``cfg.data`` (anything with ``channels`` and
    ``sample(batch, generator)``); one that returns (patches, masks) puts the loss on the
    masked pixels only.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        device: torch.device | str = "cpu",
        progress: bool = True,
        sampler: PatchSampler | MaskedPatchSampler | None = None,
    ) -> None:
        self.cfg, self.device, self.progress = cfg, torch.device(device), progress
        self.rank, self.world = world()
        if cfg.batch % self.world:
            raise UsageError(
                f"config: key 'batch': {cfg.batch} is not divisible by {self.world} processes"
            )
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.sde = sde_from_config(cfg.sde)
        if sampler is None:
            data = load_array(cfg.data["path"], cfg.data.get("key"))
            sampler = PatchSampler(data, cfg.data.get("patch", 64), cfg.data.get("flips", True))
        self.sampler = sampler
        self.channels = sampler.channels
        torch.manual_seed(cfg.seed)
        net_cfg = {**cfg.network, "channels": self.channels}
        self.net_cfg = net_cfg
        self.net = build_network(net_cfg).to(self.device)
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        self.model: nn.Module = self.net
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.seconds = 0.0  # training time over all runs of this checkpoint
        self.rng_restored = False
        self.losses: list[tuple[int, float]] = []
        self.running: float | None = None  # the loss EMA the log records
        self.resume_hint = "rerun with --resume"  # what the Ctrl-C message suggests
        self.out = Path(cfg.out)
        self._interrupt = SimpleNamespace(stop=False, hard_stop=False)

    def init_weights(self, state: dict[str, Tensor]) -> None:
        """Start from given weights (fine-tuning a prior): network and EMA alike, Adam fresh."""
        self.net.load_state_dict(state)
        self.ema.load_state_dict(state)

    # -- one step -------------------------------------------------------------------------
    def _batch(self) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        B = self.cfg.batch
        drawn = self.sampler.sample(B, self.gen)
        x0, mask = drawn if isinstance(drawn, tuple) else (drawn, None)
        t = (
            torch.rand(B, generator=self.gen, dtype=torch.float64) * (self.sde.T - self.sde.eps)
            + self.sde.eps
        )
        z = torch.randn(x0.shape, generator=self.gen)
        shard = slice(self.rank * B // self.world, (self.rank + 1) * B // self.world)
        mask = None if mask is None else mask[shard].to(self.device)
        return x0[shard].to(self.device), t[shard].to(self.device), z[shard].to(self.device), mask

    def train_step(self) -> float:
        x0, t, z, mask = self._batch()
        lr = self.cfg.lr * min(1.0, (self.step + 1) / max(1, self.cfg.warmup))
        for g in self.opt.param_groups:
            g["lr"] = lr
        x_t = self.sde.marginal(x0, t, z)
        eps = self.model(x_t, self.sde.alpha(t).float(), self.sde.beta(t).float())
        err = (eps - z) ** 2  # = β² ‖s + z/β‖²: DSM with λ(t) = β_t²
        if mask is None:
            loss = err.mean()
        else:  # the mean over masked pixels (and channels) only
            loss = (err * mask).sum() / (mask.sum() * err.shape[1]).clamp_min(1.0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip)
        self.opt.step()
        with torch.no_grad():
            d = self.cfg.ema
            for pe, p in zip(self.ema.parameters(), self.net.parameters()):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        self.step += 1
        value = loss.detach()
        if self.world > 1:
            torch.distributed.all_reduce(value)
            value /= self.world
        return float(value)

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        from usdehaze.atomic import save_torch

        state = {
            "step": self.step,
            "seconds": self.seconds,
            "net": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "rng": capture_rng(),
            "running": self.running,
            "losses": self.losses,
            "network": self.net_cfg,
            "sde": self.sde.config(),
        }
        save_torch(state, self.checkpoint_path)

    def load_checkpoint(self) -> bool:
        if not self.checkpoint_path.is_file():
            return False
        try:  # tensors, numbers, lists and dicts only: no pickle
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
            self.net.load_state_dict(state["net"])
            self.ema.load_state_dict(state["ema"])
            self.opt.load_state_dict(state["opt"])
            self.gen.set_state(state["gen"].cpu())
            self.step, self.losses = int(state["step"]), [tuple(x) for x in state["losses"]]
            self.seconds = float(state.get("seconds", 0.0))
            self.running = state.get("running")
            self.rng_restored = "rng" in state
            if self.rng_restored:
                restore_rng(state["rng"])
        except Exception as exc:  # noqa: BLE001 - unpickling refusals, empty/random files, wrong keys
            raise UsageError(
                f"{self.checkpoint_path}: not a checkpoint of this training ({first_line(exc)})"
            ) from None
        return True

    # -- the loop -------------------------------------------------------------------------
    def fit(
        self, steps: int | None = None, seconds: float | None = None, desc: str | None = None
    ) -> None:
        """Train until ``steps`` total steps (default cfg.steps) or ``seconds`` of training over
        all runs (either ends it when both are given); the bar counts steps, or seconds when only
        a time budget is given. Ctrl-C finishes the step, saves a checkpoint and stops."""
        from tqdm import tqdm

        total = steps or (None if seconds is not None else self.cfg.steps)
        self.out.mkdir(parents=True, exist_ok=True)
        timed = total is None
        bar = tqdm(
            total=seconds if timed else total,
            initial=min(self.seconds, seconds) if timed else self.step,
            disable=not self.progress or self.rank != 0,
            unit="s" if timed else "step",
            desc=desc,
            dynamic_ncols=True,
            bar_format=(
                "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
                if timed
                else None
            ),
        )
        running = self.running
        try:
            # Ctrl-C ends the loop after the running step (single process; resume.py)
            with stop_after_step(self._interrupt, enabled=self.world == 1):
                while (total is None or self.step < total) and (
                    seconds is None or self.seconds < seconds
                ):
                    t0 = time.monotonic()
                    loss = self.train_step()
                    dt = time.monotonic() - t0
                    self.seconds += dt
                    running = loss if running is None else 0.98 * running + 0.02 * loss
                    self.running = running
                    if self.step % self.cfg.log_every == 0 or self.step == total:
                        self.losses.append((self.step, running))
                    bar.set_postfix(step=self.step, loss=f"{running:.4f}")
                    bar.update(min(dt, bar.total - bar.n) if timed else 1)
                    if self.step % self.cfg.checkpoint_every == 0:
                        self.save_checkpoint()
                    if self._interrupt.stop:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            if (
                not self._interrupt.hard_stop
            ):  # a second Ctrl-C may land mid-step: keep the last save
                self.save_checkpoint()
                if self.rank == 0:
                    print(
                        f"stopped after step {self.step}: {self.checkpoint_path} keeps the {KEPT}; "
                        f"{self.resume_hint} to continue exactly",
                        file=sys.stderr,
                        flush=True,
                    )
            raise
        finally:
            bar.close()
        if running is not None and (not self.losses or self.losses[-1][0] != self.step):
            self.losses.append((self.step, running))
        self.save_checkpoint()

    def write_losses(self) -> None:
        """The loss log and its curve, ``out/loss.csv`` and ``out/loss.png`` (rank 0)."""
        if self.rank != 0:
            return
        with open(self.out / "loss.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "loss"])
            w.writerows(self.losses)
        _plot_losses(self.losses, self.out / "loss.png")

    def release_ddp(self) -> None:
        """Drop the DDP wrapper while every process is still there: its reducer holds the
        process group, and freed after the group closed (when ``run`` returned) the gloo
        group's destructor waited forever for threads talking to a peer that had exited (rank
        1 hung in about one two-process run in three)."""
        if self.model is not self.net:
            self.model = self.net
            gc.collect()

    def export(self, losses: bool = True) -> Path | None:
        """Write the loss log and curve (unless ``losses`` is false) and the EMA prior (rank 0);
        ``cfg.export['training']`` adds to the prior's training record."""
        if self.rank != 0:
            return None
        if losses:
            self.write_losses()
        exp = self.cfg.export
        path = Path(exp.get("path", self.out / "prior"))
        return save_prior(
            path,
            self.ema,
            network=self.net_cfg,
            sde=self.sde,
            normalisation=exp.get("normalisation", {}),
            data={**self.cfg.data, **exp.get("data", {})},
            training={
                "steps": self.step,
                "batch": self.cfg.batch,
                "lr": self.cfg.lr,
                "ema": self.cfg.ema,
                "seed": self.cfg.seed,
                "parameters": count_parameters(self.net),
                "final_loss": self.losses[-1][1] if self.losses else math.nan,
                "seconds": round(self.seconds, 1),
                **exp.get("training", {}),
            },
        )

    def prior(self) -> NetworkPrior:
        return NetworkPrior(self.ema, self.sde).eval()


def _plot_losses(losses: list[tuple[int, float]], path: Path) -> None:
    if not losses:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    s, v = zip(*losses)
    ax.plot(s, v)
    ax.set_xlabel("step")
    ax.set_ylabel("DSM loss (EMA of batches)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    cfg: TrainConfig,
    device: str = "auto",
    resume: bool = False,
    progress: bool = True,
    resume_hint: str | None = None,
    desc: str | None = None,
) -> Path | None:
    """Run a whole training (resuming if asked) and export the prior; returns its path on rank 0.

    ``resume_hint``: the command that continues after Ctrl-C (printed then); ``desc``: the
    progress bar's label (which model trains)."""
    from usdehaze.core.device import resolve_device

    dev = local_device(resolve_device(device))
    trainer = Trainer(cfg, dev, progress)
    if resume_hint:
        trainer.resume_hint = resume_hint
    if resume:
        if not trainer.load_checkpoint():
            raise UsageError(f"{trainer.checkpoint_path}: --resume given but no checkpoint there")
        if trainer.rank == 0:
            kept = (
                KEPT
                if trainer.rng_restored
                else KEPT.split(" and RNG")[0] + " (no RNG states: an older checkpoint)"
            )
            print(
                f"resuming {trainer.checkpoint_path} at step {trainer.step}: kept the {kept}",
                file=sys.stderr,
                flush=True,
            )
    t0 = time.time()
    trainer.fit(desc=desc)
    path = trainer.export()
    trainer.release_ddp()
    finish()
    if trainer.rank == 0 and progress:
        print(f"trained {trainer.step} steps in {time.time() - t0:.0f} s -> {path}")
    return path


def export_checkpoint(cfg: TrainConfig, device: str = "cpu") -> tuple[Path, int]:
    """Export the EMA prior of ``cfg.out``'s checkpoint as it stands (a running or stopped
    training); returns the prior's path and the checkpoint's step."""
    trainer = Trainer(cfg, torch.device(device if device != "auto" else "cpu"), progress=False)
    if not trainer.load_checkpoint():
        raise UsageError(f"{trainer.checkpoint_path}: no checkpoint to export")
    path = trainer.export()
    return path, trainer.step
