"""Dehazing: scan → normalised dB frames → joint sampler (tissue + haze priors) → result file.

Methods: ``joint`` (two priors, the default), ``fast`` (a one-pass student distilled from
``joint``: usdehaze.ultrasound.student), ``dps`` and ``pigdm-gauss`` (tissue prior only,
Gaussian noise: the paper's single-prior baselines), ``bm3d`` (classical despeckling). Data
models for ``joint`` are registered pieces, one module each (usdehaze.ultrasound.models,
``DATA_MODELS``): ``logsum`` (envelope powers add), ``additive`` (the TMLR paper's y = x + n on
log images) and ``iq`` (the follow-up paper's exact y = x + h in IQ with priors on μ-law
companded I/Q; needs complex IQ input). What a model declares (its priors, their JSON keys, its
rules, its magnitude-only fallback, encoding and decoding) is read from there, not here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.logcomp import DB, IQ_MULAW, reference, to_db
from usdehaze.ultrasound.models import (
    DATA_MODELS,
    SINGLE_PRIOR_MODEL,
    DataModel,
    data_model,
    haze_from_power,
)

METHODS = ("joint", "fast", "dps", "pigdm-gauss", "bm3d")
# whose network Jacobians the joint DC step back-propagates; the others use a Gaussian prior's
JACOBIANS = ("both", "haze", "tissue", "none")
# the registered data models by name (the registry itself: a model added later is in it)
MODELS = DATA_MODELS


class _Domains(Mapping):
    """model name → the prior normalisation it needs (the "domain" a prior's JSON records),
    read from the registry."""

    def __getitem__(self, name: str) -> str:
        return DATA_MODELS[name].domain

    def __iter__(self) -> Iterator[str]:
        return iter(DATA_MODELS)

    def __len__(self) -> int:
        return len(DATA_MODELS)


PRIOR_DOMAIN: Mapping[str, str] = _Domains()
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


# the sections of a DehazeConfig besides its top-level ``method`` (each field's metadata names
# its own): the data model and its parameters, the sampler, where and how the networks run,
# and which priors (and student) a run loads
SECTIONS = ("model", "sampler", "runtime", "priors")


def _setting(default: Any, section: str | None, help: str | Callable[[], str], **meta: Any):
    """A DehazeConfig field: its default, its ``section`` (None: the top level, as ``method``)
    and its command-line help (a string, or a function that makes it from a registry when the
    CLI is built); ``path``: the option takes a file or folder. The options of ``usdehaze run``
    and ``run-many`` are made from these (usdehaze.cli._options), nothing else lists them."""
    return field(default=default, metadata={"section": section, "help": help, **meta})


def _model_help() -> str:
    """--model's help, from the registered data models (usdehaze.ultrasound.models)."""
    default = DehazeConfig.model
    said = [
        f"{n} ({'default; ' if n == default else ''}{m.summary})"
        for n, m in sorted(DATA_MODELS.items(), key=lambda kv: kv[0] != default)
    ]
    return "Data model for joint: " + ", ".join(said[:-1]) + f" or {said[-1]}."


def _gamma_help() -> str:
    """--gamma's help: the data models that read γ (their declared ``params``)."""
    names = [n for n, m in DATA_MODELS.items() if "gamma" in m.params]
    return f"Dehazing strength γ ({' and '.join(names)} models)."


@dataclass
class DehazeConfig:
    """Settings of a dehazing run (all recorded in the output).

    Flat attributes (``cfg.steps``), each field tagged with its section (``SECTIONS``) and its
    command-line help; ``nested()`` is the same settings grouped by section, and ``from_dict``
    takes either form (docs/architecture.md, *Dehazing settings*)."""

    method: str = _setting(
        "joint",
        None,
        "joint (the sampler, default), fast (its one-pass student), dps, pigdm-gauss or bm3d.",
    )
    model: str = _setting("iq", "model", _model_help)
    rule: str = _setting("dps", "sampler", "Data consistency: dps (default), pigdm or projection.")
    weighting: str = _setting(
        "variance",
        "sampler",
        "Weighting of the data-consistency step: variance (default; by the Tweedie variances, "
        "as PiGDM), paper or sde (what each is for each rule: usdehaze.core.dc_rules).",
    )
    steps: int = _setting(25, "sampler", "Sampler steps.")
    solver: str = _setting("em", "sampler", "Prior step: em (default), ddim or heun.")
    eta: float = _setting(1.0, "sampler", "DDIM stochasticity: 0 deterministic, 1 ancestral.")
    schedule: str = _setting("linear", "sampler", "Step times: linear (default) or karras.")
    jacobian: str = _setting(
        "both",
        "sampler",
        "Networks the joint data-consistency step back-propagates: both (default: the exact "
        "step), haze, tissue or none; the others run forward only, with a Gaussian prior's "
        "Jacobian.",
    )
    jacobian_variance: float = _setting(
        0.5,
        "sampler",
        "Variance of the Gaussian prior whose Jacobian stands in for a network's "
        "(--jacobian other than both).",
    )
    start_sigma: float = _setting(3.0, "sampler", "Late start noise level (CCDF).")
    lam: float = _setting(3.0, "sampler", "Tissue data-consistency weight λ.")
    kappa: float = _setting(3.0, "sampler", "Haze data-consistency weight κ (joint method).")
    gamma: float = _setting(1.0, "model", _gamma_help)
    haze_init_db: float = _setting(
        -20.0,
        "model",
        "The haze's starting guess: the input this many dB lower (joint method).",
    )
    noise_sigma: float = _setting(
        0.2,
        "model",
        "Gaussian noise σ of y = x + n for the single-prior baselines (dps, pigdm-gauss; on "
        "images scaled to [-1, 1]) and bm3d's noise level.",
    )
    samples: int = _setting(1, "sampler", "Posterior samples per frame (std saved when > 1).")
    seed: int = _setting(0, "sampler", "Random seed (frame i: seed + i).")
    device: str = _setting("auto", "runtime", "auto, cpu or cuda.")
    dynamic_range: float = _setting(
        60.0,
        "model",
        "dB kept below each frame's maximum (default 60): the log models' input scale and the "
        "result's clip; dB priors must be trained with the same.",
    )
    batch: int = _setting(4, "runtime", "Frames per sampler batch.")
    channels_last: bool = _setting(True, "runtime", "NHWC memory layout for the networks.")
    compile: bool = _setting(False, "runtime", "torch.compile the networks (needs a C compiler).")
    cuda_graphs: bool = _setting(
        False,
        "runtime",
        "Compile the networks as CUDA graphs (torch.compile reduce-overhead; on CPU a plain "
        "compile).",
    )
    precision: str = _setting(
        "auto",
        "runtime",
        "Network precision: auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16.",
    )
    tissue_prior: str | None = _setting(
        None, "priors", "Tissue prior (.safetensors + .json).", path=True
    )
    haze_prior: str | None = _setting(
        None, "priors", "Haze prior (.safetensors + .json).", path=True
    )
    priors: str | None = _setting(
        None,
        "priors",
        "Folder with both priors, e.g. from usdehaze adapt (--tissue-prior/--haze-prior "
        "override one).",
        path=True,
    )
    student: str | None = _setting(
        None,
        "priors",
        "Method fast: the distilled student (.safetensors + .json); default the --priors "
        "folder's student_iq, else the shipped one.",
        path=True,
    )

    def validate(self, source: str = "config") -> DehazeConfig:
        if self.method not in METHODS:
            raise UsageError(
                f"{source}: method '{self.method}': expected one of {', '.join(METHODS)}"
            )
        if self.model not in DATA_MODELS:
            raise UsageError(
                f"{source}: model '{self.model}': expected one of {', '.join(DATA_MODELS)}"
            )
        if self.method == "fast" and self.model != "iq":
            raise UsageError(
                f"{source}: model '{self.model}': method fast is distilled from the iq model "
                "(use model iq, or method joint)"
            )
        if self.method == "fast" and self.samples != 1:
            raise UsageError(
                f"{source}: samples {self.samples}: method fast returns the posterior mean in one "
                "pass; uncertainty maps need the sampler (method joint)"
            )
        if self.method == "joint":  # the rules its measurement model declares what they need
            DATA_MODELS[self.model].check_rule(self.rule, source)
        from usdehaze.core.sampler import PRECISIONS, SCHEDULES, SOLVERS

        for name, allowed in (
            ("solver", SOLVERS),
            ("schedule", SCHEDULES),
            ("jacobian", JACOBIANS),
            ("precision", ("auto", *PRECISIONS)),
        ):
            if getattr(self, name) not in allowed:
                raise UsageError(
                    f"{source}: {name} '{getattr(self, name)}': expected one of {', '.join(allowed)}"
                )
        from usdehaze import limits

        # positive and finite: a 0, negative or NaN value here gives all-NaN or all-0 dB frames
        for name in (
            "jacobian_variance",
            "start_sigma",
            "lam",
            "kappa",
            "gamma",
            "noise_sigma",
            "dynamic_range",
        ):
            limits.number(getattr(self, name), f"{source}: key '{name}'", positive=True)
        limits.number(self.eta, f"{source}: key 'eta'", minimum=0.0)
        limits.number(self.haze_init_db, f"{source}: key 'haze_init_db'")
        limits.seed(self.seed, f"{source}: key 'seed'")
        for name in ("steps", "samples", "batch"):
            if getattr(self, name) < 1:
                raise UsageError(f"{source}: {name} {getattr(self, name)}: expected at least 1")
            if getattr(self, name) > limits.MAX_SAMPLER[name]:
                raise UsageError(
                    f"{source}: {name} {getattr(self, name)}: expected at most "
                    f"{limits.MAX_SAMPLER[name]} (the limit)"
                )
        return self

    @classmethod
    def keys(cls, section: str | None) -> tuple[str, ...]:
        """The fields of one section (None: the top level's, ``method``), in field order."""
        return tuple(f.name for f in fields(cls) if f.metadata["section"] == section)

    def nested(self) -> dict[str, Any]:
        """The settings grouped by section: ``{"method": ..., "model": {"model": ..., "gamma":
        ...}, "sampler": {...}, "runtime": {...}, "priors": {...}}``; ``from_dict`` takes it."""
        flat = asdict(self)
        out: dict[str, Any] = {k: flat[k] for k in self.keys(None)}
        for section in SECTIONS:
            out[section] = {k: flat[k] for k in self.keys(section)}
        return out

    @classmethod
    def flatten(cls, d: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
        """A config mapping with flat keys (``steps: 10``), sections (``sampler: {steps: 10}``)
        or both → flat keys. A section is a mapping under a section's name (``model`` and
        ``priors`` are also fields: a string there is the field); a key in the wrong section, or
        given twice with different values, is one line."""
        where: dict[str, str] = {}
        out: dict[str, Any] = {}

        def put(key: str, value: Any, said: str) -> None:
            if key in out and (
                out[key] != value or isinstance(out[key], bool) != isinstance(value, bool)
            ):
                raise UsageError(
                    f"{source}: key '{key}' given twice with different values ({where[key]}: "
                    f"{out[key]!r}, {said}: {value!r}); keep one"
                )
            where.setdefault(key, said)
            out[key] = value

        known = {f.name: f.metadata["section"] for f in fields(cls)}
        for k, v in d.items():
            if k not in SECTIONS or (k in known and not isinstance(v, Mapping)):
                put(k, v, k)
                continue
            if v is None:  # an empty section (``runtime:`` with nothing under it)
                continue
            if not isinstance(v, Mapping):
                raise UsageError(
                    f"{source}: key '{k}': expected a mapping of {k} settings "
                    f"({', '.join(cls.keys(k))}), got {v!r}"
                )
            for sub, value in v.items():
                place = known.get(sub, "")
                if place == k:
                    put(sub, value, f"{k}.{sub}")
                    continue
                said = f"{source}: key '{k}.{sub}': "
                if place is None:
                    raise UsageError(said + "a top-level setting (write it outside the sections)")
                if place:
                    raise UsageError(said + f"a {place} setting (write it under {place})")
                raise UsageError(said + f"unknown (section {k} has {', '.join(cls.keys(k))})")
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> DehazeConfig:
        """A validated config from flat keys, sections (``nested()``'s form) or both."""
        d = cls.flatten(d, source)
        known = {f.name: f.default for f in fields(cls)}
        for k, v in d.items():
            if k not in known:
                raise UsageError(
                    f"{source}: key '{k}': unknown (expected one of {sorted(known)}, or a "
                    f"section: {', '.join(SECTIONS)})"
                )
            _check_type(source, k, v, known[k])
        return cls(**d).validate(source)


def _check_type(source: str, key: str, value: Any, default: Any) -> None:
    """A config value must have its default's type (an integer is a number; a default of None
    takes a string): ``lam: abc`` is one line, not a traceback from deep in the sampler."""
    if default is None:
        ok, kind = value is None or isinstance(value, str), "string"
    elif isinstance(default, bool):
        ok, kind = isinstance(value, bool), "boolean (true/false)"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "integer"
    elif isinstance(default, float):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "number"
    else:
        ok, kind = isinstance(value, type(default)), type(default).__name__
    if not ok:
        raise UsageError(f"{source}: key '{key}': expected a {kind}, got {value!r}")


# runtime settings, the runtime section: where and how the networks run, not what the run is
# (device, batch, network precision, compilation, memory layout, CUDA graphs); a resumed
# run-many may change them
RUNTIME_KEYS = DehazeConfig.keys("runtime")


def build_config(config: str | Path | None, overrides: dict[str, Any]) -> DehazeConfig:
    """DehazeConfig from defaults, then the YAML file (flat keys or sections), then the given
    overrides (flat keys: command-line options; None: not given); a baseline method takes its own sampler settings where none
    were given. Used by the CLI (run, run-many, evaluate, bench) and the pipelines."""
    from usdehaze.config import read_yaml

    values = DehazeConfig.flatten(read_yaml(config), str(config)) if config else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return method_settings(DehazeConfig.from_dict(values, str(config or "options")))


# the single-prior baselines' own sampler settings (their best on validation, docs/results.md):
# the joint default's λ = 3 over 40 steps makes a single prior's DC step diverge
BASELINE_SETTINGS = {
    m: {"solver": "ddim", "eta": 0.0, "steps": 5, "lam": 1.0} for m in ("dps", "pigdm-gauss")
}


def method_settings(cfg: DehazeConfig) -> DehazeConfig:
    """``cfg`` with a baseline method's own sampler settings in place of each joint default it
    kept; settings that were changed from the defaults stay as given."""
    own = BASELINE_SETTINGS.get(cfg.method)
    if not own:
        return cfg
    joint = DehazeConfig()
    return replace(cfg, **{k: v for k, v in own.items() if getattr(cfg, k) == getattr(joint, k)})


def run_model(cfg: DehazeConfig) -> DataModel:
    """The data model a run reads, encodes, decodes and checks its priors with: the config's
    for the joint method and its student (fast), the additive model's dB images for the
    single-prior baselines (y = x + Gaussian noise) and bm3d."""
    name = cfg.model if cfg.method in ("joint", "fast") else SINGLE_PRIOR_MODEL
    return data_model(name)(cfg)


def prior_names(model: str | bool) -> tuple[str, str]:
    """File names of a data model's tissue and haze priors in a priors folder (the package's
    own weights folder, or one ``usdehaze adapt`` wrote): ``tissue_iq.safetensors`` for the iq
    model. ``model`` may also be a bool: whether the run reads IQ (the iq model's names)."""
    if isinstance(model, bool):
        model = "iq" if model else "logsum"
    return data_model(model).prior_names()


def prior_paths(cfg: DehazeConfig, option: str = "--priors") -> tuple[Path, Path]:
    """The tissue and haze prior files of a config: ``tissue_prior`` / ``haze_prior`` when given,
    else the ``priors`` folder's or the shipped ones for its domain (the single-prior baselines
    always work on dB images). A ``priors`` folder must hold both, weights and configs; messages
    name it as the command's ``option`` (``usdehaze adapt``: --from)."""
    names = run_model(cfg).prior_names()
    folder = Path(cfg.priors) if cfg.priors else WEIGHTS_DIR
    if cfg.priors:
        if not folder.is_dir():
            raise UsageError(f"{folder}: {option}: no such folder (expected a folder of priors)")
        missing = [
            f.name
            for n in names
            for f in (folder / n, (folder / n).with_suffix(".json"))
            if not f.is_file()
        ]
        if missing:
            raise UsageError(
                f"{folder}: {option}: no {', '.join(missing)} (expected {names[0]} and {names[1]} "
                f"with their .json, as usdehaze adapt writes for the {cfg.model} model)"
            )
    return (
        Path(cfg.tissue_prior) if cfg.tissue_prior else folder / names[0],
        Path(cfg.haze_prior) if cfg.haze_prior else folder / names[1],
    )


def check_prior_mu(meta: dict[str, Any]) -> None:
    """Refuse a μ-law I/Q prior whose JSON records another μ than the iq model's (it would see
    its data companded differently from what it learnt): one line naming the prior file."""
    if (meta.get("normalisation") or {}).get("domain") != IQ_MULAW:
        return
    for key in data_model("iq")(DehazeConfig()).prior_keys():
        if key.key == "normalisation.mu":
            key.check(meta, "iq")


def uses_iq(cfg: DehazeConfig) -> bool:
    """Whether a run needs complex IQ (the joint method with a model that needs phase, such as
    iq, or its student)."""
    return run_model(cfg).needs_phase


def for_magnitude_data(cfg: DehazeConfig) -> tuple[DehazeConfig, str | None]:
    """The config to run on magnitude-only data, and a note when it had to change: a model that
    needs phases (iq) runs its declared fallback (logsum: the log domain) with the shipped
    priors of that model."""
    model = run_model(cfg)
    if not model.needs_phase:
        return cfg, None
    fallback = DATA_MODELS.get(model.fallback or "")
    if cfg.method == "fast":
        raise UsageError(
            "method fast needs complex IQ data and this input is magnitude-only; "
            "use --method joint (it runs such data in the log domain)"
        )
    if fallback is None:
        raise UsageError(
            f"model '{cfg.model}' needs complex IQ data and this input is magnitude-only "
            "(the model has no magnitude-only fallback)"
        )
    where = "in the log domain " if fallback.domain == DB else ""
    if cfg.tissue_prior or cfg.haze_prior or cfg.priors:
        raise UsageError(
            f"model '{cfg.model}' needs complex IQ data and this input is magnitude-only; "
            f"use --model {fallback.name} with '{fallback.domain}'-domain priors"
        )
    return replace(cfg, model=fallback.name), (
        f"magnitude-only data (no I/Q): running {where}(model {fallback.name}) instead of "
        f"{cfg.model}"
    )


class Dehazer:
    """Dehaze batches of dB frames (n, z, x) with one configuration; priors load once."""

    def __init__(self, cfg: DehazeConfig) -> None:
        import torch

        from usdehaze.core.device import resolve_device

        self.cfg = cfg = method_settings(cfg.validate())
        self.device = resolve_device(cfg.device)
        self.model = run_model(cfg)  # what frames it reads, how it encodes and decodes them
        self.priors: dict[str, Any] = {}
        self.checksums: dict[str, str] = {}
        self.student = None
        if cfg.method == "fast":
            from usdehaze.ultrasound import student

            path = student.student_path(cfg.priors, cfg.student)
            self.student = student.load(path, self.device, cfg.dynamic_range)
            self.checksums["student"] = self.student.checksum
        if cfg.method in ("joint", "fast", "dps", "pigdm-gauss"):
            from usdehaze.core.priors import accelerate, load_prior

            t_path, h_path = prior_paths(cfg)
            self.priors["tissue"] = load_prior(t_path, self.device)
            if cfg.method == "joint":
                self.priors["haze"] = load_prior(h_path, self.device)
            for k, p in self.priors.items():
                self.checksums[k] = p.checksum
                accelerate(p, cfg.channels_last, cfg.compile, cfg.cuda_graphs)
                # every key of its JSON the model needs (domain, mu, dynamic range...); the
                # student keeps the tissue prior for the out-of-distribution check
                self.model.check_prior(p.meta, cfg.model if cfg.method == "joint" else cfg.method)
        self._torch = torch
        self.sampler_options: dict[str, Any] = {}  # extra JointSampler arguments (benchmarks)
        # network evaluations each frame of the last call got, as the sampler counted them
        # (samples × prior calls); 0 when none ran (bm3d, or only blank frames)
        self.nfe = 0

    def precision(self) -> str:
        """The networks' precision: ``auto`` is bf16 on CUDA and fp32 on CPU (where bf16 is faster
        only on CPUs with native bf16 and would make results depend on the machine)."""
        if self.cfg.precision == "auto":
            return "bf16" if self.device.type == "cuda" else "fp32"
        return self.cfg.precision

    def min_size(self) -> int:
        """Smallest frame side the priors handle (their downsampling factor × 2)."""
        nets = [p.net for p in self.priors.values()] + ([self.student.net] if self.student else [])
        return 2 * max((getattr(n, "factor", 1) for n in nets), default=1)

    def operator(self):
        """The measurement model the sampler runs (recorded in results as ``operator``): the
        data model's for the joint method, the identity (y = x + Gaussian noise) for the
        single-prior baselines; None where no sampler runs (bm3d, fast)."""
        from usdehaze.core.operators import Identity

        if self.cfg.method == "joint":
            return self.model.operator()
        return Identity() if self.cfg.method in ("dps", "pigdm-gauss") else None

    def sampler(self):
        from usdehaze.core.sampler import JointSampler

        c = self.cfg
        tissue = self.priors["tissue"]
        common = {
            "steps": c.steps,
            "lam": c.lam,
            "start_sigma": c.start_sigma,
            "device": self.device,
            "precision": self.precision(),
            "solver": c.solver,
            "eta": c.eta,
            "schedule": c.schedule,
        }
        if c.method == "joint":
            op = self.operator()
            kw = {"rule": c.rule, "weighting": c.weighting, "kappa": c.kappa}
            # the joint DC step back-propagates the networks `jacobian` names; the others are
            # run forward only, with a Gaussian prior's Jacobian (variance jacobian_variance)
            v = c.jacobian_variance
            kw["signal_jacobian"] = None if c.jacobian in ("both", "tissue") else v
            kw["noise_jacobian"] = None if c.jacobian in ("both", "haze") else v
            kw |= common | self.sampler_options
            return JointSampler(tissue, self.priors["haze"], op, tissue.sde, **kw)
        kw = {
            "rule": "dps" if c.method == "dps" else "pigdm",
            "weighting": c.weighting if c.method == "dps" else "paper",
            "noise_sigma": c.noise_sigma,
        }
        kw |= common | self.sampler_options
        return JointSampler(tissue, None, self.operator(), tissue.sde, **kw)

    def __call__(
        self,
        db: np.ndarray,
        seed: int | None = None,
        callback=None,
        frames: list[int] | range | None = None,
    ) -> dict[str, np.ndarray]:
        """Dehaze dB frames (n, z, x) in [-DR, 0]; returns tissue, haze (and *_std) in dB.

        ``frames``: the frames' indices in their scan; each frame then draws its noise from
        seed + index, so its result does not depend on batching, sharding or resuming.
        """
        c = self.cfg
        self.nfe = 0
        self._check_frames(db)
        if self.model.needs_phase:
            raise UsageError(
                f"model '{c.model}' needs complex IQ frames, not dB images: use "
                f"Dehazer.dehaze_iq, or model {self.model.fallback or 'logsum'}"
            )
        if c.method == "bm3d":
            tissue = _bm3d(db, c.dynamic_range, c.noise_sigma)
            return {"tissue": tissue, "haze": haze_from_power(db, tissue, c.dynamic_range)}
        return self._sample(db, seed, callback, frames)

    def _sample(self, frames_in, seed, callback, frames, within=None) -> dict[str, np.ndarray]:
        """The model's encoding of the frames → the sampler → its decoding (tissue, haze, std);
        the single-prior baselines start from noise, the joint method from the model's start."""
        c = self.cfg
        m = self.model.encode(frames_in, self.device, within)
        s = self.sampler()
        start = {"x_init": m.x_init, "n_init": m.n_init} if c.method == "joint" else {}
        seeds = self._seeds(len(frames_in), seed, frames)
        res = s(m.y, samples=c.samples, seed=seeds, callback=callback, **start)
        self.nfe = res.nfe_per_item
        return self.model.decode(res, m)

    def dehaze_iq(
        self,
        iq: np.ndarray,
        callback=None,
        frames: list[int] | range | None = None,
        seed: int | None = None,
        within: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Dehaze IQ (complex) or envelope frames (n, z, x): ``input``, ``tissue``, ``haze`` (and
        ``*_std``) in dB, 0 dB = each input frame's maximum. dB models log-compress first; the
        iq model separates the companded I/Q and log-compresses its tissue and haze IQ.

        ``within``: when ``iq`` are crops, the whole frames (n, Z, X) they were cut from; the
        crops are then scaled and referenced as those frames are (a crop of a frame dehazes as
        that part of the frame would), not by their own maxima."""
        c = self.cfg
        self.nfe = 0
        iq = np.asarray(iq)
        self._check_frames(iq)
        blank = blank_frames(iq)
        if blank.any() and within is None:  # blank in, blank out, and no sampler time spent
            return self._with_blank_frames(iq, blank, callback, frames, seed)
        whole = iq if within is None else np.asarray(within)
        env_ref = reference(np.abs(whole), "frame")
        db = to_db(iq, c.dynamic_range, normalise=env_ref)
        if not uses_iq(c):
            return {"input": db, **self(db, seed=seed, callback=callback, frames=frames)}
        if not np.iscomplexobj(iq):
            raise UsageError(
                f"model '{c.model}' needs complex IQ frames; these are magnitudes (use model "
                f"{self.model.fallback or 'logsum'})"
            )
        if not np.isfinite(iq).all():
            raise UsageError("frames: contain NaN or Inf")
        if self.student is not None:  # one network evaluation per frame
            from usdehaze.ultrasound import student

            self.nfe = 1
            return student.run(
                self.student, iq, c.dynamic_range, self.device, self.precision(), within
            )
        return {"input": db, **self._sample(iq, seed, callback, frames, whole)}

    def _with_blank_frames(self, iq, blank, callback, frames, seed) -> dict[str, np.ndarray]:
        keep = np.flatnonzero(~blank)
        full = -self.cfg.dynamic_range
        sub = {}
        if len(keep):
            idx = None if frames is None else [frames[i] for i in keep]
            sub = self.dehaze_iq(iq[keep], callback=callback, frames=idx, seed=seed)
        keys = ("input", "tissue", "haze") + (
            ("tissue_std", "haze_std") if self.cfg.samples > 1 else ()
        )
        out = {}
        for k in keys:
            a = np.full(iq.shape, 0.0 if k.endswith("_std") else full, np.float32)
            if len(keep):
                a[keep] = sub[k]
            out[k] = a
        return out

    def _check_frames(self, a: np.ndarray) -> None:
        if a.ndim != 3:
            raise UsageError(f"frames: expected (frames, z, x), got shape {a.shape}")
        if min(a.shape[1:]) < self.min_size():
            raise UsageError(
                f"frames of {a.shape[1]}x{a.shape[2]} pixels are smaller than the priors' minimum {self.min_size()}x{self.min_size()}"
            )

    def _seeds(self, n: int, seed: int | None, frames: list[int] | range | None) -> int | list[int]:
        """One seed for the batch, or seed + frame index per frame (independent of batching)."""
        if frames is None:
            return self.cfg.seed if seed is None else seed
        if len(frames) != n:
            raise ValueError(f"frames: {len(frames)} indices for {n} frames")
        return [self.cfg.seed + int(f) for f in frames]


def blank_frames(iq: np.ndarray) -> np.ndarray:
    """Which frames (n, z, x) are all zeros: no signal to dehaze (written as blank frames)."""
    a = np.asarray(iq)
    return ~np.any(a.reshape(len(a), -1) != 0, axis=1)


def _bm3d(db: np.ndarray, dynamic_range: float, sigma: float) -> np.ndarray:
    try:
        import bm3d
    except ImportError:
        raise UsageError(
            "method 'bm3d' needs the bm3d package: pip install 'usdehaze[baselines]'"
        ) from None
    u = (db + dynamic_range) / dynamic_range  # [0, 1]
    out = np.stack([bm3d.bm3d(f, sigma_psd=sigma / 2) for f in u])
    return np.clip(out * dynamic_range - dynamic_range, -dynamic_range, 0).astype(np.float32)


def run_record(
    dehazer: Dehazer,
    source: str | Path,
    layout: str,
    key: str | None,
    frames: Any,
    magnitude_only: bool,
) -> dict[str, Any]:
    """The provenance a result file records about its run (usdehaze.ultrasound.driver:
    provenance, then source_record): version, full config as it ran, method, seed, prior
    checksums, the precision "auto" resolved to, dynamic range; source file, layout, key,
    frames and whether it had phase."""
    from usdehaze.ultrasound.driver import provenance, source_record

    return {
        **provenance(dehazer),
        **source_record(source, layout, key, frames, magnitude_only),
    }


def result_check_attrs(harm: Any, ood: Any, with_prior: bool) -> dict[str, Any]:
    """The do-no-harm check's root attributes (``harm_*``), and ``ood_warning`` / ``ood_reasons``
    over both checks: "speckle" (the input, before sampling: usdehaze.ultrasound.ood) and
    "result" (the output, usdehaze.ultrasound.harm). Methods without priors (bm3d) are not
    judged: their figures are kept, no warning."""
    out = dict(harm.attrs())
    out["harm_warning"] = bool(with_prior and harm.warning)
    reasons = [r for r, on in (("speckle", ood.warning), ("result", out["harm_warning"])) if on]
    out["ood_warning"] = bool(reasons)
    out["ood_reasons"] = reasons
    return out


def run_dehaze(
    scan,
    out: str | Path,
    cfg: DehazeConfig,
    frames: range | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    attrs: dict[str, Any] | None = None,
    step_callback: Callable[[int, int, float], None] | None = None,
    warn: Callable[[str], None] | None = None,
    strict: bool = False,
) -> Path:
    """Dehaze ``frames`` of a Scan into a result file; frames stream in batches of cfg.batch.

    ``progress(frames_done, total, seconds)`` after each batch; ``step_callback`` each sampler
    step; ``warn(message)`` for frames that are all zeros (kept blank, listed in ``blank_frames``)
    and when the scan looks unlike the priors' training data (usdehaze.ultrasound.ood, checked
    once before sampling and recorded as ``ood_score`` / ``ood_warning``); ``strict``: refuse
    such a scan instead (UsageError, nothing written). The root attribute ``nfe`` is the number
    of network evaluations each dehazed frame got, as the sampler counted them (0: none ran).
    """
    from usdehaze.ultrasound.driver import FrameDriver
    from usdehaze.ultrasound.ood import check_run
    from usdehaze.ultrasound.results import ResultWriter

    frames = range(scan.n_frames) if frames is None else frames
    note = None
    if scan.magnitude_only:
        cfg, note = for_magnitude_data(cfg)
    dehazer = Dehazer(cfg)
    cfg = dehazer.cfg  # with a baseline's own settings: what actually ran
    ood = check_run(scan, frames, dehazer, strict, warn)
    record = {
        **run_record(dehazer, scan.path, scan.layout, scan.key, frames, scan.magnitude_only),
        **({"note": note} if note else {}),
        **ood.attrs(),
        **(attrs or {}),
    }
    driver = FrameDriver(dehazer, ood, warn, str(scan.path))
    t0 = time.perf_counter()
    done = 0
    with ResultWriter(
        out,
        len(frames),
        scan.shape,
        x=scan.x,
        z=scan.z,
        grid=scan.grid,
        axes=scan.axes,
        with_std=cfg.samples > 1,
        attrs=record,
    ) as w:
        for idx, res in driver.run(scan.batches(frames, cfg.batch), step_callback):
            for k in range(len(idx)):
                w.write(done, **{key: v[k] for key, v in res.items()})
                done += 1
            if driver.blank:  # kept when a later batch is interrupted
                w.update_attrs({"blank_frames": list(driver.blank)})
            if progress is not None:
                progress(done, len(frames), time.perf_counter() - t0)
        w.update_attrs(driver.finish())  # result check, nfe, blank frames
        seconds = time.perf_counter() - t0
        w.update_attrs({"seconds": seconds, "seconds_per_frame": seconds / max(done, 1)})
    return Path(out)
