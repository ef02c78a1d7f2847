"""The data-model interface and its registry (``DATA_MODELS``): one registered class per model.

A data model says how the joint sampler sees ultrasound frames: which frames it reads (dB images,
or complex IQ when it ``needs_phase``), how it encodes them into the measurement y and the
sampler's starting point, its measurement operator (a core ``MeasurementModel``), the priors it
runs with (their file names, and the keys of their JSON that must match), the DC rules its
operator allows (asked of ``core.dc_rules.DC_RULES``: each rule declares what it needs), the
model that stands in on magnitude-only data, and how samples decode back to dB images: the
tissue, and the haze as it adds to the input.

Adding a model is one new module in this package: subclass ``DataModel``, decorate it with
``@register_model`` (docs/architecture.md has the example a test runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from usdehaze.core.registry import Registry
from usdehaze.errors import UsageError
from usdehaze.ultrasound.logcomp import db_to_unit, reference, to_db, unit_to_db

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from usdehaze.core.operators import MeasurementModel
    from usdehaze.core.sampler import SampleResult

# a data model is available by its ``name`` (config key ``model``) and says its priors' domain
DATA_MODELS: Registry[type[DataModel]] = Registry("model", requires=("domain",))
register_model = DATA_MODELS.register


def data_model(name: str, source: str | None = None) -> type[DataModel]:
    """The registered model called ``name`` (UsageError naming ``source`` and the choices)."""
    return DATA_MODELS.lookup(name, source)


@dataclass(frozen=True)
class PriorKey:
    """One key of a prior's JSON a model needs to have a given value (dotted ``key``).

    ``says`` is the refusal after "FILE: key 'KEY': ", formatted with ``got``, ``want`` and
    ``who`` (the run: its model, or its method). A prior without the key is accepted (older
    priors record less); ``number``: compared as numbers (255 and 255.0 are the same μ)."""

    key: str
    want: Any
    says: str
    number: bool = False

    def check(self, meta: dict[str, Any], who: str) -> None:
        got: Any = meta
        for part in self.key.split("."):
            got = got.get(part) if isinstance(got, dict) else None
        if got is None:
            return
        if self.number:
            try:
                same = float(got) == float(self.want)
            except (TypeError, ValueError):
                same = False
        else:
            same = got == self.want
        if not same:
            path = meta.get("path", "prior")
            raise UsageError(
                f"{path}: key '{self.key}': " + self.says.format(got=got, want=self.want, who=who)
            )


@dataclass
class Measurement:
    """What a model makes of a batch of frames: y and the sampler's start (torch tensors on the
    run's device, (B, C, z, x)) and what decoding needs (``context``)."""

    y: Tensor
    x_init: Tensor | None = None
    n_init: Tensor | None = None
    context: dict[str, Any] = field(default_factory=dict)


def _capabilities(op_class: type) -> set[str]:
    from usdehaze.core.operators import CAPABILITIES

    return {c for c in CAPABILITIES if getattr(op_class, c, False)}


class DataModel:
    """Base class. Subclasses set the class attributes and write ``operator``, ``encode`` and
    ``decode`` (``DbModel`` writes encode for models on normalised dB images).

    An instance holds the run's config (a DehazeConfig: the model reads its ``params``)."""

    name: str = ""
    label: str = ""  # its row in usdehaze evaluate's table ("joint (LABEL)")
    summary: str = ""  # a few words for help texts
    domain: str = ""  # normalisation.domain of its priors (usdehaze.ultrasound.logcomp)
    needs_phase: bool = False  # reads complex IQ frames (else dB images)
    display: bool = False  # priors trained on scan-converted display images (B-mode cines)
    fallback: str | None = None  # the model magnitude-only data runs instead (needs_phase)
    # the dB model the single-prior methods (dps, pigdm-gauss, bm3d: y = x + Gaussian noise)
    # read for a run of this one, with its tissue prior (None: this model itself)
    single_prior: str | None = None
    prior_suffix: str = ""  # tissue{suffix}.safetensors, haze{suffix}.safetensors
    params: tuple[str, ...] = ()  # the DehazeConfig fields it reads
    settings: dict[str, Any] = {}  # sampler settings it is evaluated with (rule, weighting)
    # a row in usdehaze evaluate's default table (beamformer-domain frames of the simulator or
    # the corpus); False for a model of other data (bmode: pipelines/eval_bmode.py scores it)
    table_row: bool = True

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    # -- declarations ------------------------------------------------------------------------
    @classmethod
    def operator_type(cls) -> type[MeasurementModel]:
        """Its measurement model's class (imported when asked: torch loads with it), whose
        declared capabilities the DC rules are checked against."""
        raise NotImplementedError

    @classmethod
    def rules(cls) -> tuple[str, ...]:
        """The DC rules its operator allows: every registered rule whose needs it declares."""
        from usdehaze.core.dc_rules import DC_RULES

        have = _capabilities(cls.operator_type())
        return tuple(n for n, rule in DC_RULES.items() if rule.needs <= have)

    @classmethod
    def check_rule(cls, rule: str, source: str = "config") -> None:
        """One line when ``rule`` is not one its operator allows (unknown rules are the
        sampler's to refuse)."""
        from usdehaze.core.dc_rules import DC_RULES

        if rule not in DC_RULES or rule in cls.rules():
            return
        from usdehaze.core.operators import CAPABILITIES

        lacks = [
            c
            for c in CAPABILITIES
            if c in DC_RULES[rule].needs - _capabilities(cls.operator_type())
        ]
        others = [m for m, c in DATA_MODELS.items() if rule in c.rules()]
        what = "nonlinear" if "linear" in lacks else f"without {', '.join(lacks)}"
        raise UsageError(
            f"{source}: rule '{rule}': the {cls.name} model is {what} (rule {rule} needs "
            f"{', '.join(lacks)}), use rule {' or '.join(cls.rules())}"
            + (f" (or model {' or '.join(others)})" if others else "")
        )

    @classmethod
    def prior_names(cls) -> tuple[str, str]:
        """File names of its tissue and haze priors in a priors folder."""
        return f"tissue{cls.prior_suffix}.safetensors", f"haze{cls.prior_suffix}.safetensors"

    def prior_keys(self) -> list[PriorKey]:
        """The keys of a prior's JSON this run needs (the domain always; subclasses add)."""
        return [
            PriorKey(
                "normalisation.domain",
                self.domain,
                "prior trained on '{got}' data, the {who} run needs '{want}' priors",
            )
        ]

    def check_prior(self, meta: dict[str, Any], who: str | None = None) -> None:
        """Refuse a prior whose JSON disagrees with one of ``prior_keys``: one line naming the
        file and the key."""
        for key in self.prior_keys():
            key.check(meta, who or self.name)

    # -- the run -----------------------------------------------------------------------------
    def operator(self) -> MeasurementModel:
        raise NotImplementedError

    def encode(self, frames: np.ndarray, device: Any, within: Any = None) -> Measurement:
        """Frames (n, z, x): dB images in [-DR, 0], or complex IQ when ``needs_phase``;
        ``within``: when the frames are crops, the whole IQ frames they were cut from (a crop is
        scaled as its frame is)."""
        raise NotImplementedError

    def decode(self, res: SampleResult, m: Measurement) -> dict[str, np.ndarray]:
        """The sampler's result → ``tissue`` and ``haze`` dB images (n, z, x), and their
        ``*_std`` when it drew several samples; the haze as it adds to the input."""
        raise NotImplementedError

    # -- what its priors see -----------------------------------------------------------------
    def reads(self, frames: np.ndarray, within: Any = None) -> np.ndarray:
        """IQ or envelope frames (n, z, x) → what it reads: the complex IQ itself when it
        ``needs_phase``, else dB images in [-DR, 0] (0 dB: each frame's envelope maximum, or
        that of the whole frame ``within`` a crop was cut from), as ``Dehazer.dehaze_iq`` makes."""
        if self.needs_phase:
            return np.asarray(frames)
        whole = frames if within is None else np.asarray(within)
        ref = reference(np.abs(whole), "frame")
        return to_db(frames, self.cfg.dynamic_range, normalise=ref)

    def prior_input(self, frames: np.ndarray, within: Any = None) -> np.ndarray:
        """Frames as it reads them (``reads``) → what its tissue prior sees, (n, C, z, x): the
        measurement y its ``encode`` gives the sampler, as numpy (the out-of-distribution
        check, adapt's material)."""
        return self.encode(frames, "cpu", within).y.numpy()


class DbModel(DataModel):
    """A model on normalised log-compressed images (u ∈ [-1, 1] ↔ dB ∈ [-DR, 0]): reads dB
    frames, starts the tissue at the input and the haze ``haze_init_db`` below it, and needs
    priors trained at the run's dynamic range. Subclasses say how the haze decodes."""

    def prior_keys(self) -> list[PriorKey]:
        return super().prior_keys() + [
            PriorKey(
                "normalisation.dynamic_range",
                self.cfg.dynamic_range,
                "prior trained with dynamic_range {got} dB, run uses {want} "
                "(use --dynamic-range {got})",
                number=True,
            )
        ]

    def encode(self, frames: np.ndarray, device: Any, within: Any = None) -> Measurement:
        import torch

        c = self.cfg
        y = torch.from_numpy(db_to_unit(frames, c.dynamic_range)[:, None]).to(device)
        n_init = y + 2 * c.haze_init_db / c.dynamic_range
        return Measurement(y, x_init=y, n_init=n_init, context={"db": frames})

    def decode(self, res: SampleResult, m: Measurement) -> dict[str, np.ndarray]:
        c = self.cfg
        out = {"tissue": unit_to_db(res.x[:, 0].cpu().numpy(), c.dynamic_range)}
        out["haze"] = self.decode_haze(res, m, out["tissue"])
        if c.samples > 1:
            scale = c.dynamic_range / 2  # std in dB
            out["tissue_std"] = (res.x_std[:, 0].cpu().numpy() * scale).astype(np.float32)
            out["haze_std"] = (res.n_std[:, 0].cpu().numpy() * scale).astype(np.float32)
        return out

    def decode_haze(self, res: SampleResult, m: Measurement, tissue: np.ndarray) -> np.ndarray:
        """The haze as it adds to the input (default: the power the tissue leaves over)."""
        return haze_from_power(m.context["db"], tissue, self.cfg.dynamic_range)


def haze_from_power(
    input_db: np.ndarray, tissue_db: np.ndarray, dynamic_range: float
) -> np.ndarray:
    """The haze a tissue estimate implies: dB of the power left over, 10·log10(P_y − P_x)⁺."""
    p = 10 ** (input_db / 10) - 10 ** (tissue_db / 10)
    return np.clip(10 * np.log10(np.maximum(p, 1e-30)), -dynamic_range, 0).astype(np.float32)
