"""The method interface and its registry (``METHODS``): one registered class per dehazing method.

A method is what ``--method`` names: the priors it loads (``tissue``, ``haze``, ``student``), the
data model it reads frames with (the config's, one of ``models``, or the dB model the
single-prior methods read), whether it runs the sampler (``stepwise``: it has network
evaluations and takes a step callback), whether it draws several samples, its own default
sampler settings, the optional packages it needs, what it does on magnitude-only data, and how
it dehazes a batch of frames. ``Dehazer`` (usdehaze.ultrasound.dehaze) delegates to it; the
config check, the CLI help, evaluate's rows and the napari widget read this registry.

Adding a method is one new module in this package: subclass ``Method`` (or ``SamplerMethod``),
decorate it with ``@register_method`` (docs/architecture.md has the example a test runs).
Nothing here imports torch: the CLI's help is made from these declarations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from usdehaze.core.registry import Registry
from usdehaze.errors import UsageError
from usdehaze.ultrasound.logcomp import DB
from usdehaze.ultrasound.models import DATA_MODELS, DataModel, data_model

if TYPE_CHECKING:  # pragma: no cover
    from usdehaze.core.operators import MeasurementModel

METHODS: Registry[type[Method]] = Registry("method", requires=("summary",))
register_method = METHODS.register


def method_of(name: str, source: str | None = None) -> type[Method]:
    """The registered method called ``name`` (UsageError naming ``source`` and the choices)."""
    return METHODS.lookup(name, source)


class Method:
    """Base class: declarations (class attributes and classmethods, read before anything loads)
    and the run (``run_db``; ``run_iq`` for a data model that needs phase). An instance holds
    the run's config; the run methods get the ``Dehazer`` (device, priors, precision)."""

    name: str = ""
    summary: str = ""  # a few words for --method's help
    row: str = ""  # its row in usdehaze evaluate's table ("" : none)
    priors: tuple[str, ...] = ()  # what it loads, in order: "student", "tissue", "haze"
    models: tuple[str, ...] = ()  # the config models it runs (empty: any registered)
    models_why: str = ""  # why only those (the refusal's words)
    stepwise: bool = False  # runs the sampler: network evaluations per step, a step callback
    multi_sample: bool = False  # takes samples > 1 (std maps)
    one_sample_why: str = "gives one estimate per frame"
    # its own defaults of config settings (in place of the joint defaults): a dataclass whose
    # fields are named as the settings (refine: steps, start_sigma); None: none
    Params: type | None = None
    extras: tuple[str, ...] = ()  # optional packages it needs (import names, usdehaze.extras)
    # precision auto runs it in bf16 on CPUs with native bf16 (AMX): checked to score as fp32
    cpu_bf16: bool = False

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    # -- declarations ------------------------------------------------------------------------
    @classmethod
    def model_name(cls, cfg: Any) -> str:
        """The data model it reads, encodes and checks its priors with: by default the dB
        model a single prior reads for the config's model (its ``single_prior``, else itself)."""
        return DATA_MODELS[cfg.model].single_prior or cfg.model

    @classmethod
    def data_model(cls, cfg: Any) -> DataModel:
        return data_model(cls.model_name(cfg))(cfg)

    @classmethod
    def check(cls, cfg: Any, source: str) -> None:
        """One line for a config it cannot run (its models, samples > 1)."""
        if cls.models and cfg.model not in cls.models:
            raise UsageError(
                f"{source}: model '{cfg.model}': method {cls.name} {cls.models_why} (use model "
                f"{' or '.join(cls.models)}, or method joint)"
            )
        if not cls.multi_sample and cfg.samples != 1:
            raise UsageError(
                f"{source}: samples {cfg.samples}: method {cls.name} {cls.one_sample_why}; "
                "uncertainty maps need the sampler (method joint)"
            )

    @classmethod
    def defaults(cls, cfg: Any) -> Any:
        """``cfg`` with its own sampler settings in place of each joint default it kept;
        settings changed from the defaults stay as given."""
        own = cls.own_settings()
        if not own:
            return cfg
        joint = type(cfg)()
        return replace(
            cfg, **{k: v for k, v in own.items() if getattr(cfg, k) == getattr(joint, k)}
        )

    @classmethod
    def own_settings(cls) -> dict[str, Any]:
        """Its ``Params``' defaults by setting name ({} without)."""
        return asdict(cls.Params()) if cls.Params is not None else {}

    @classmethod
    def prior_role(cls, cfg: Any) -> str:
        """Who a prior's JSON is checked for (the refusal's words: 'the WHO run needs ...')."""
        return cls.name

    @classmethod
    def resolve(cls, cfg: Any) -> Any:
        """The config that runs frames given without a scan (arrays): its own (``auto``: the
        method it picks for beamformed data)."""
        return cfg

    @classmethod
    def for_magnitude_data(cls, cfg: Any) -> tuple[Any, str | None]:
        """The config to run on magnitude-only data, and a note when it had to change: a model
        that needs phases (iq) runs its declared fallback (logsum: the log domain) with the
        shipped priors of that model."""
        model = cls.data_model(cfg)
        if not model.needs_phase:
            return cfg, None
        fallback = DATA_MODELS.get(model.fallback or "")
        if fallback is None:
            raise UsageError(
                f"model '{cfg.model}' needs complex IQ data and this input is magnitude-only "
                "(the model has no magnitude-only fallback)"
            )
        where = "in the log domain " if fallback.domain == DB else ""
        return _switch_model(
            cfg,
            fallback,
            f"model '{cfg.model}' needs complex IQ data and this input is magnitude-only; "
            f"use --model {fallback.name} with '{fallback.domain}'-domain priors",
            f"magnitude-only data (no I/Q): running {where}(model {fallback.name}) instead of "
            f"{cfg.model}",
        )

    @classmethod
    def for_display_data(cls, cfg: Any) -> tuple[Any, str | None]:
        """The config to run on scan-converted B-mode (display grey levels, or magnitudes on a
        Cartesian pixel grid), and a note when it had to change: a model whose priors never saw
        display images is replaced by the registered display model with its shipped priors."""
        if DATA_MODELS[cfg.model].display:
            return cfg, None
        target = next((m for m in DATA_MODELS.values() if m.display), None)
        if target is None:
            raise UsageError(
                "this input is scan-converted B-mode and no display-domain data model is registered"
            )
        return _switch_model(
            cfg,
            target,
            f"model '{cfg.model}': this input is scan-converted B-mode, which its priors "
            f"never saw; use --model {target.name} with '{target.domain}'-domain priors",
            f"scan-converted B-mode: running model {target.name} (priors trained on display "
            f"images) instead of {cfg.model}",
        )

    @classmethod
    def for_scan(cls, cfg: Any, scan: Any) -> tuple[Any, str | None]:
        """The config to run on ``scan`` and a note when it changed, by what its frames are:
        complex IQ as given; display grey levels, or magnitudes on a Cartesian grid (a
        scan-converted image) for a display model; polar magnitudes in the log domain."""
        if scan.domain == "display" or (scan.domain == "envelope" and scan.grid == "cartesian"):
            return cls.for_display_data(cfg)
        if scan.magnitude_only:
            return cls.for_magnitude_data(cfg)
        return cfg, None

    @classmethod
    def configure(cls, cfg: Any, **changes: Any) -> Any:
        """``cfg`` set to run this method (with ``changes``): on its first model when it runs
        only some (fast: iq) and ``cfg``'s is not one of them."""
        model = cls.models[0] if cls.models and cfg.model not in cls.models else cfg.model
        return replace(cfg, method=cls.name, model=model, **changes)

    @classmethod
    def rows(cls, base: Any) -> dict[str, Any]:
        """Its rows in usdehaze evaluate's table: label → config (none without ``row``)."""
        return {cls.row: replace(base, method=cls.name)} if cls.row else {}

    # -- the run -----------------------------------------------------------------------------
    def operator(self, d: Any) -> MeasurementModel | None:
        """The measurement model its sampler runs (results record it); None without one."""
        return None

    def run_db(self, d: Any, db: np.ndarray, seed: Any, callback: Any, frames: Any) -> dict:
        """dB frames (n, z, x) in [-DR, 0] → ``tissue``, ``haze`` (and ``*_std``) in dB."""
        raise NotImplementedError

    def run_iq(self, d: Any, iq: np.ndarray, db: np.ndarray, run: dict[str, Any]) -> dict:
        """Complex frames (n, z, x) for a model that needs phase, ``db`` their input dB →
        ``input``, ``tissue``, ``haze`` (and ``*_std``); ``run``: seed, callback, frames and
        ``whole`` (the frames crops were cut from) / ``within`` (None: not crops)."""
        raise UsageError(f"method '{self.name}' does not run on complex IQ frames")


class SamplerMethod(Method):
    """A method that runs the JointSampler: the data model's encoding → the sampler → its
    decoding; network evaluations counted by the sampler (``Dehazer.nfe``)."""

    stepwise = True
    multi_sample = True

    def rule_name(self) -> str:
        """The DC rule it runs (the config's ``rule``)."""
        return self.cfg.rule

    def rule_params(self) -> dict[str, Any]:
        """Its own values of rule parameters, over the config's settings of the same names."""
        return {}

    def sampler_options(self, d: Any) -> dict[str, Any]:
        """Its own JointSampler keywords besides the common ones (joint: κ)."""
        return {}

    def sampler(self, d: Any):
        from usdehaze.core.sampler import JointSampler
        from usdehaze.ultrasound.pieces import build_pieces

        c = self.cfg
        tissue = d.priors["tissue"]
        rule, solver = build_pieces(c, self.operator(d), self.rule_name(), **self.rule_params())
        common = {
            "steps": c.steps,
            "lam": c.lam,
            "start_sigma": c.start_sigma,
            "device": d.device,
            "precision": d.precision(),
            "schedule": c.schedule,
        }
        kw = self.sampler_options(d) | common | d.sampler_options
        return JointSampler(tissue, d.priors.get("haze"), rule, tissue.sde, solver, **kw)

    def start(self, m: Any) -> dict[str, Any]:
        """The sampler's starting point (none: it starts from noise)."""
        return {}

    def sample(
        self, d: Any, frames_in: np.ndarray, seed: Any, callback: Any, frames: Any, within=None
    ):
        """The model's encoding of the frames → the sampler → its decoding (tissue, haze, std)."""
        m = d.model.encode(frames_in, d.device, within)
        s = self.sampler(d)
        seeds = d.seeds(len(frames_in), seed, frames)
        kw = {"samples": self.cfg.samples, "callback": callback, **self.start(m)}
        if isinstance(seeds, list) and d.device.type == "cpu":
            from usdehaze.core.sampler import sample_each

            # each frame on its own, its threads on frames: a frame's result is the same bit for
            # bit whatever its batch, shard, resume or thread count (issue 31 item 12)
            res = sample_each(s, m.y, seeds, workers=d.threads or 1, **kw)
        else:
            res = s(m.y, seed=seeds, **kw)
        d.nfe = res.nfe_per_item
        return d.model.decode(res, m)

    def run_db(self, d, db, seed, callback, frames):
        return self.sample(d, db, seed, callback, frames)

    def run_iq(self, d, iq, db, run):
        w = run["whole"]
        return {"input": db, **self.sample(d, iq, run["seed"], run["callback"], run["frames"], w)}


@dataclass(frozen=True)
class SinglePriorParams:
    """The single-prior baselines' own sampler settings: their best on validation
    (docs/results.md); the joint default's λ = 3 over 25 steps makes their DC step diverge."""

    solver: str = "ddim"
    eta: float = 0.0
    steps: int = 5
    lam: float = 1.0


class SinglePriorMethod(SamplerMethod):
    """The paper's single-prior baselines: the tissue prior only, y = x + Gaussian noise
    (σ: ``noise_sigma``) on the dB images the config's model reads, starting from noise; their
    own sampler settings (the joint default's λ = 3 over 25 steps makes a single prior's DC
    step diverge; these were their best on validation, docs/results.md)."""

    priors = ("tissue",)
    Params = SinglePriorParams
    rule: str = ""  # its DC rule (the config's weighting and noise_sigma its parameters)

    def rule_name(self) -> str:
        return self.rule

    def operator(self, d):
        from usdehaze.core.operators import Identity

        return Identity()


def run_model(cfg: Any) -> DataModel:
    """The data model a run reads, encodes, decodes and checks its priors with (its method's)."""
    return METHODS[cfg.method].data_model(cfg)


def uses_iq(cfg: Any) -> bool:
    """Whether a run needs complex IQ (its method's data model needs phase: joint or fast on
    the iq model)."""
    return run_model(cfg).needs_phase


def for_scan(cfg: Any, scan: Any) -> tuple[Any, str | None]:
    """The config to run on ``scan`` and a note when it changed (its method's ``for_scan``)."""
    return METHODS[cfg.method].for_scan(cfg, scan)


def for_magnitude_data(cfg: Any) -> tuple[Any, str | None]:
    """The config to run on magnitude-only data, and a note when it had to change (its
    method's ``for_magnitude_data``)."""
    return METHODS[cfg.method].for_magnitude_data(cfg)


def _switch_model(cfg: Any, model: Any, refusal: str, note: str) -> tuple[Any, str]:
    """``cfg`` running data model ``model`` with its shipped priors, and the ``note`` saying so;
    priors the user chose (for the model they asked for) cannot follow: the ``refusal``."""
    if cfg.tissue_prior or cfg.haze_prior or cfg.priors:
        raise UsageError(refusal)
    return replace(cfg, model=model.name), note
