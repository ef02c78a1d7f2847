"""What the GAN and Glow baselines share: seeded batches (the core's PatchSampler), a resumable
step loop with atomic checkpoints and a progress bar, and safetensors + JSON model files.

The loss differs per model (adversarial, likelihood), so each model brings its own ``step``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from usdehaze.atomic import atomic_path, save_torch
from usdehaze.core.data import PatchSampler
from usdehaze.errors import UsageError, first_line

_KEPT = "networks, optimiser states, loss log, data order and RNG states (torch, numpy, python)"


@dataclass
class _Progress:
    """Where a fit stands: steps done, the (step, running loss) log and the running loss."""

    done: int = 0
    log: list[tuple[int, float]] = field(default_factory=list)
    running: float | None = None


def fit(
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    step: Callable[[Tensor, torch.Generator], float],
    data: np.ndarray,
    *,
    steps: int,
    batch: int,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 200,
    desc: str = "train",
    progress: bool = True,
    resume_hint: str = "rerun the same command",
) -> list[tuple[int, float]]:
    """Run ``step(batch, generator)`` until ``steps``; resumes from ``checkpoint`` when it exists.

    Batches are whole images with random flips, drawn by one seeded ``torch.Generator``.
    Returns (step, running loss) pairs every 25 steps. Ctrl-C finishes the running step, saves
    the checkpoint (weights, optimisers, batch generator, global RNG states, loss) and stops, so
    the resumed run is the uninterrupted one bit for bit.
    """
    from types import SimpleNamespace

    from tqdm import tqdm

    from usdehaze.core.resume import stop_after_step

    sampler = PatchSampler(data, patch=None, flips=True)
    gen = torch.Generator().manual_seed(seed)
    ckpt = Path(checkpoint) if checkpoint else None
    state = _resume(ckpt, modules, optimizers, gen, desc)

    def save() -> None:
        """The checkpoint as it stands now (none without a checkpoint path)."""
        _save(ckpt, state, gen, modules, optimizers)

    bar = tqdm(total=steps, initial=state.done, desc=desc, disable=not progress, unit="step",
               dynamic_ncols=True, leave=False)  # fmt: skip
    flags = SimpleNamespace(stop=False, hard_stop=False)
    try:
        with stop_after_step(flags):
            while state.done < steps:
                _one_step(modules, step, sampler.sample(batch, gen), gen, state, steps, desc)
                bar.set_postfix(loss=f"{state.running:.4f}")
                bar.update(1)
                if state.done % checkpoint_every == 0:
                    save()
                if flags.stop:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        if not flags.hard_stop:  # a second Ctrl-C may land mid-step: keep the last save
            save()
            _say_stopped(ckpt, desc, state.done, resume_hint)
        raise
    finally:
        bar.close()
    save()
    for m in modules.values():
        m.eval()
    return state.log


def _resume(
    ckpt: Path | None,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    gen: torch.Generator,
    desc: str,
) -> _Progress:
    """Networks, optimisers, batch generator, RNG states and loss log from ``ckpt`` when it
    exists (said on stderr); a fresh start otherwise."""
    import sys

    from usdehaze.core.resume import restore_rng

    if not (ckpt and ckpt.is_file()):
        return _Progress()
    try:  # tensors, numbers, lists and dicts only: a crafted checkpoint cannot run code
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        for k, m in modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        gen.set_state(state["gen"])
        progress = _Progress(int(state["step"]), [tuple(x) for x in state["log"]])
        progress.running = state.get("running")
        if "rng" in state:
            restore_rng(state["rng"])
    except Exception as exc:  # noqa: BLE001 - unpickling refusals, truncation, wrong keys
        raise UsageError(
            f"{ckpt}: not a checkpoint of this model ({first_line(exc)}); delete it to start over"
        ) from None
    kept = _KEPT if "rng" in state else _KEPT.split(" and RNG")[0] + " (no RNG states)"
    print(f"{desc}: resuming {ckpt} at step {progress.done}: kept the {kept}", file=sys.stderr)
    return progress


def _save(
    ckpt: Path | None,
    progress: _Progress,
    gen: torch.Generator,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> None:
    """Write the checkpoint atomically: everything an exact resume needs (see ``_KEPT``)."""
    from usdehaze.core.resume import capture_rng

    if ckpt is None:
        return
    state = {
        "step": progress.done,
        "log": progress.log,
        "gen": gen.get_state(),
        "rng": capture_rng(),
        "running": progress.running,
        "modules": {k: m.state_dict() for k, m in modules.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
    }
    save_torch(state, ckpt)


def _one_step(
    modules: dict[str, nn.Module],
    step: Callable[[Tensor, torch.Generator], float],
    batch: Tensor,
    gen: torch.Generator,
    progress: _Progress,
    steps: int,
    desc: str,
) -> None:
    """One training step in train mode; the running loss and its log updated (a non-finite
    loss stops the fit)."""
    for m in modules.values():
        m.train()
    loss = step(batch, gen)
    if not np.isfinite(loss):
        raise RuntimeError(
            f"{desc}: loss became {loss} at step {progress.done}; lower the learning rate"
        )
    running = progress.running
    progress.running = loss if running is None else 0.95 * running + 0.05 * loss
    progress.done += 1
    if progress.done % 25 == 0 or progress.done == steps:
        progress.log.append((progress.done, progress.running))


def _say_stopped(ckpt: Path | None, desc: str, done: int, resume_hint: str) -> None:
    """The line after a Ctrl-C: where the checkpoint is and how to resume exactly."""
    import sys

    if ckpt is not None:
        print(
            f"{desc}: stopped after step {done}: {ckpt} keeps the {_KEPT}; "
            f"{resume_hint} to continue exactly",
            file=sys.stderr,
            flush=True,
        )


def save_model(path: str | Path, net: nn.Module, config: dict[str, Any]) -> Path:
    """``NAME.safetensors`` + ``NAME.json`` (the constructor arguments), both written atomically."""
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(config, indent=2))
    return path


def load_model(
    path: str | Path, build: Callable[[dict[str, Any]], nn.Module]
) -> tuple[nn.Module, dict[str, Any]]:
    """Inverse of :func:`save_model`; ``build(config)`` makes the empty network."""
    from safetensors.torch import load_file

    path = Path(path).with_suffix(".safetensors")
    cfg_path = path.with_suffix(".json")
    if not path.is_file() or not cfg_path.is_file():
        raise UsageError(f"{path}: model weights or {cfg_path.name} missing")
    from usdehaze.jsonio import read_json
    from usdehaze.limits import MAX_PRIOR_JSON_BYTES

    config = read_json(cfg_path, "model config", MAX_PRIOR_JSON_BYTES)
    if not isinstance(config, dict):
        raise UsageError(f"{cfg_path}: expected a JSON object (a model config)")
    try:
        net = build(config)
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise UsageError(f"{cfg_path}: not a config of this model ({first_line(exc)})") from None
    try:
        net.load_state_dict(load_file(str(path)))
    except Exception as exc:  # noqa: BLE001 - a mismatch is a file problem for the user
        raise UsageError(
            f"{path}: weights do not fit the model in {cfg_path.name} ({first_line(exc)})"
        ) from None
    return net.eval(), config
