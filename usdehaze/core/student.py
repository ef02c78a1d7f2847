"""One-pass students: a small fully convolutional U-Net that maps an image to what a slow sampler
returns for it (its posterior mean), trained by regression on the sampler's outputs.

Regressing on single posterior draws converges to their mean (the minimiser of the squared error
is the conditional expectation), so one teacher sample per training image is already an unbiased
target; more samples per image only lower the target's noise. Nothing here knows what the images
are: ``usdehaze.ultrasound.student`` decides the channels.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from usdehaze.errors import UsageError, first_line

MAX_WIDTH = 128  # a student JSON may not ask for a network wider or deeper than these
MAX_LEVELS = 6
MAX_BYTES = 5 * 2**20  # the budget for a shipped student


@dataclass
class StudentNet:
    """Architecture of a student (recorded in its JSON)."""

    in_channels: int
    out_channels: int
    width: int = 16
    levels: int = 4
    depth: int = 1  # extra 3x3 convolutions per encoder level
    residual: int = 0  # the input channel every output is added to (its baseline)

    def check(self, source: str) -> StudentNet:
        for name, lo, hi in (
            ("in_channels", 1, 16),
            ("out_channels", 1, 16),
            ("width", 1, MAX_WIDTH),
            ("levels", 1, MAX_LEVELS),
            ("depth", 0, 4),
            ("residual", 0, self.in_channels - 1),
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise UsageError(f"{source}: key 'network.{name}': expected {lo}..{hi}, got {v!r}")
        return self


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.SiLU())


class OnePassUNet(nn.Module):
    """U-Net without time input, light enough for real time on a CPU: widths w, 2w, 2w, ...;
    each level a strided 3×3 convolution and ``arch.depth`` more, each decoder level one 3×3
    convolution over the upsampled coarse features and the skip; any frame size (padded to a
    multiple of 2^levels, cropped back). Every output is added to the input channel
    ``residual`` (its baseline), so an untrained student returns that channel."""

    def __init__(self, arch: StudentNet) -> None:
        super().__init__()
        self.arch = arch
        w = [arch.width] + [arch.width * 2] * arch.levels
        self.stem = nn.Sequential(_conv(arch.in_channels, w[0]), _conv(w[0], w[0]))
        self.enc = nn.ModuleList(
            nn.Sequential(
                _conv(w[k], w[k + 1], 2), *[_conv(w[k + 1], w[k + 1]) for _ in range(arch.depth)]
            )
            for k in range(arch.levels)
        )
        self.dec = nn.ModuleList(_conv(w[k + 1] + w[k], w[k]) for k in range(arch.levels))
        self.head = nn.Conv2d(w[0], arch.out_channels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def factor(self) -> int:
        return 2**self.arch.levels

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        f = self.factor
        ph, pw = (-h) % f, (-w) % f
        xin = nn.functional.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        skips = [self.stem(xin)]
        for enc in self.enc:
            skips.append(enc(skips[-1]))
        y = skips.pop()
        for k in reversed(range(self.arch.levels)):
            y = self.dec[k](_up_cat(y, skips[k]))
        out = self.head(y)[..., :h, :w]
        r = self.arch.residual
        return out + x[:, r : r + 1]


def _up_cat(y: Tensor, skip: Tensor) -> Tensor:
    """torch.cat([nearest 2× upsampling of y, skip], dim=1), the upsampled values written
    straight into the result when no gradient is taken (no upsampled copy to concatenate: the
    same values; 18 % of a 256 × 128 student pass went to upsampling and concatenating).
    Training keeps the plain ops, whose backward sums in the order it always did."""
    if torch.is_grad_enabled() and (y.requires_grad or skip.requires_grad):
        up = nn.functional.interpolate(y, scale_factor=2, mode="nearest")
        return torch.cat([up, skip], dim=1)
    n, c, h, w = y.shape
    out = y.new_empty((n, c + skip.shape[1], 2 * h, 2 * w))
    out[:, :c].unflatten(3, (w, 2)).unflatten(2, (h, 2)).copy_(y[:, :, :, None, :, None])
    out[:, c:] = skip
    return out


def parameter_bytes(net: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in net.parameters())


def state_checksum(state: dict[str, Tensor]) -> str:
    """sha256 over the weights in name order (the student's identity in result files)."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class Student:
    """A loaded student: the network (eval mode) and its JSON record (provenance included)."""

    net: OnePassUNet
    meta: dict[str, Any]
    checksum: str

    def __call__(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.net(x)

    def channels_last(self) -> Student:
        """The same student in NHWC layout (made once): oneDNN's bf16 convolutions on CPU run
        about 1.5x faster in it; fp32 runs keep NCHW, so their results stay as they were."""
        if getattr(self, "_nhwc", None) is None:
            import copy

            net = copy.deepcopy(self.net).to(memory_format=torch.channels_last)
            self._nhwc = Student(net, self.meta, self.checksum)
        return self._nhwc


def save_student(path: str | Path, net: OnePassUNet, meta: dict[str, Any]) -> Path:
    """Write ``NAME.safetensors`` + ``NAME.json`` (architecture, checksum and ``meta``:
    provenance such as the teacher's checksums, corpus and steps), each atomically."""
    from safetensors.torch import save_file

    from usdehaze.atomic import atomic_path

    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    record = {
        "format": "usdehaze-student",
        "network": asdict(net.arch),
        "checksum": state_checksum(state),
        "bytes": sum(v.numel() * v.element_size() for v in state.values()),
        **meta,
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    with atomic_path(path.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2))
    return path


def load_student(path: str | Path, device: str | torch.device = "cpu") -> Student:
    """Load a student (safetensors: no pickle); its JSON must describe these weights exactly."""
    from safetensors.torch import load_file

    from usdehaze.limits import bounded_file, not_special

    path = Path(path)
    weights, cfg_path = path.with_suffix(".safetensors"), path.with_suffix(".json")
    for p, what in ((weights, "weights (.safetensors)"), (cfg_path, "config (.json)")):
        not_special(p, f"student {what}")
        if not p.is_file():
            raise UsageError(f"{p}: student {what} not found")
    bounded_file(cfg_path, "student config", 1 << 20)
    bounded_file(weights, "student weights file", 2 * MAX_BYTES)
    try:
        meta = json.loads(cfg_path.read_text())
        if not isinstance(meta, dict) or meta.get("format") != "usdehaze-student":
            raise ValueError("expected format 'usdehaze-student'")
        arch = StudentNet(**meta["network"]).check(str(cfg_path))
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - bad JSON, missing or unknown keys
        raise UsageError(f"{cfg_path}: not a student config ({first_line(exc)})") from None
    try:
        state = load_file(str(weights))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user-facing file problem
        raise UsageError(f"{weights}: not a safetensors file ({first_line(exc)})") from None
    if state_checksum(state) != meta.get("checksum"):
        raise UsageError(f"{cfg_path}: key 'checksum': does not match {weights.name}")
    if not all(torch.isfinite(v).all() for v in state.values()):
        raise UsageError(f"{weights}: weights hold NaN or Inf")
    net = OnePassUNet(arch)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise UsageError(
            f"{weights}: weights do not fit key 'network' ({first_line(exc)})"
        ) from None
    net = net.to(device).eval()
    probe_student(net, str(weights))
    meta["path"] = str(path)
    return Student(net, meta, meta["checksum"])


def probe_student(net: OnePassUNet, source: str) -> None:
    """One pass over a 16×16 uniform(−1, 1) probe (the unit scale of a student's inputs): finite
    weights scaled out of range are refused at load, not as NaN or garbage results."""
    from usdehaze.core.probe import PROBE_SIZE, check_forward, probe_input

    device = next(net.parameters()).device
    x = probe_input((1, net.arch.in_channels, PROBE_SIZE, PROBE_SIZE), device)
    check_forward(lambda: net(x), source)


@dataclass
class DistilConfig:
    """Settings of a student's training (recorded in its JSON)."""

    steps: int = 3000
    batch: int = 16
    crop: int = 96
    lr: float = 2e-3
    flip: bool = True  # left-right flips (a mirrored scan is as plausible as the scan)
    seed: int = 0
    checkpoint_every: int = 250
    loss: str = "l1"
    network: dict[str, int] = field(default_factory=lambda: {"width": 16, "levels": 3})


class Distiller:
    """Regression of a student on (input, target) image pairs of any sizes, with random crops;
    resumable from ``out/checkpoint.pt`` (tensors only, loaded with weights_only=True)."""

    def __init__(
        self,
        inputs: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        cfg: DistilConfig,
        out: str | Path,
        device: str | torch.device = "cpu",
        weights: Sequence[np.ndarray] | None = None,
    ) -> None:
        if len(inputs) != len(targets) or not inputs:
            raise ValueError("inputs and targets: expected as many of each, at least one")
        if weights is not None and len(weights) != len(inputs):
            raise ValueError("weights: expected one (1, z, x) map per input")
        self.inputs = [torch.as_tensor(np.asarray(a, np.float32)) for a in inputs]
        self.targets = [torch.as_tensor(np.asarray(a, np.float32)) for a in targets]
        # per-pixel loss weights (1, z, x), e.g. 0 outside an imaged region; None: all pixels
        self.weights = None if weights is None else [torch.as_tensor(w) for w in weights]
        self.cfg, self.out, self.device = cfg, Path(out), torch.device(device)
        arch = StudentNet(
            in_channels=self.inputs[0].shape[0],
            out_channels=self.targets[0].shape[0],
            **cfg.network,
        ).check("network")
        torch.manual_seed(cfg.seed)
        self.net = OnePassUNet(arch).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step, self.seconds = 0, 0.0
        self.losses: list[tuple[int, float]] = []
        self.load_checkpoint()

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def _lr(self) -> float:  # cosine decay to 5 % of the start
        c = self.cfg
        return c.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * self.step / c.steps)))

    def _batch(self) -> tuple[Tensor, Tensor]:
        c, g = self.cfg, self.gen
        xs, ys = [], []
        for _ in range(c.batch):
            i = int(torch.randint(len(self.inputs), (1,), generator=g))
            x, y = self.inputs[i], self.targets[i]
            if self.weights is not None:  # cropped and flipped with the target, its last channel
                y = torch.cat([y, self.weights[i].to(y.dtype)])
            h, w = x.shape[-2:]
            ch, cw = min(c.crop, h), min(c.crop, w)
            r = int(torch.randint(h - ch + 1, (1,), generator=g))
            s = int(torch.randint(w - cw + 1, (1,), generator=g))
            x, y = x[:, r : r + ch, s : s + cw], y[:, r : r + ch, s : s + cw]
            if c.flip and bool(torch.randint(2, (1,), generator=g)):
                x, y = x.flip(-1), y.flip(-1)
            if (ch, cw) != (c.crop, c.crop):  # a frame smaller than a crop: pad it up
                pad = (0, c.crop - cw, 0, c.crop - ch)
                x = nn.functional.pad(x[None], pad, mode="replicate")[0]
                y = nn.functional.pad(y[None], pad, mode="replicate")[0]
            xs.append(x)
            ys.append(y)
        return torch.stack(xs).to(self.device), torch.stack(ys).to(self.device)

    def train_step(self) -> float:
        x, y = self._batch()
        for group in self.opt.param_groups:
            group["lr"] = self._lr()
        if self.weights is not None:
            y, w = y[:, :-1], y[:, -1:]
        err = self.net(x) - y
        err = err.abs() if self.cfg.loss == "l1" else err.square()
        if self.weights is None:
            loss = err.mean()
        else:  # the weighted mean over pixels and channels
            loss = (err * w).sum() / (w.sum() * err.shape[1]).clamp_min(1e-12)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return float(loss.detach())

    def save_checkpoint(self) -> None:
        from usdehaze.atomic import save_torch

        self.out.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step,
            "seconds": self.seconds,
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "losses": self.losses,
            "config": json.dumps(asdict(self.cfg)),
        }
        save_torch(state, self.checkpoint_path)

    def load_checkpoint(self) -> bool:
        if not self.checkpoint_path.is_file():
            return False
        try:  # tensors, numbers and lists only: no pickle
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
            if json.loads(state["config"]) != asdict(self.cfg):
                raise ValueError("it was made with other settings; remove it to start again")
            self.net.load_state_dict(state["net"])
            self.opt.load_state_dict(state["opt"])
            self.gen.set_state(state["gen"].cpu())
            self.step, self.seconds = int(state["step"]), float(state["seconds"])
            self.losses = [(int(a), float(b)) for a, b in state["losses"]]
        except Exception as exc:  # noqa: BLE001
            raise UsageError(
                f"{self.checkpoint_path}: not a checkpoint of this training ({first_line(exc)})"
            ) from None
        return True

    def fit(
        self, log: Callable[[str], None] | None = print, stop: Callable[[], bool] | None = None
    ) -> None:
        """Train to ``cfg.steps``, checkpointing every ``checkpoint_every`` steps and at the end
        (or when ``stop()`` says so, after the running step)."""
        c = self.cfg
        self.net.train()
        t0, step0, sec0, running = time.perf_counter(), self.step, self.seconds, None
        while self.step < c.steps:
            loss = self.train_step()
            running = loss if running is None else 0.98 * running + 0.02 * loss
            if self.step % 10 == 0:
                self.losses.append((self.step, running))
            halt = stop is not None and stop()
            if self.step % c.checkpoint_every == 0 or self.step == c.steps or halt:
                elapsed = time.perf_counter() - t0
                self.seconds = sec0 + elapsed
                self.save_checkpoint()
                if log is not None:
                    eta = (c.steps - self.step) * elapsed / max(self.step - step0, 1)
                    log(f"step {self.step}/{c.steps}  loss {running:.4f}  ETA {eta:.0f} s")
            if halt:
                break
        self.net.eval()
