"""The dehazing settings: ``DehazeConfig``, every setting once (its default, its section, its
command-line help), and ``build_config`` (defaults, then a YAML file, then options).

What each method and data model accepts is asked of their registries (``METHODS``,
``DATA_MODELS``); the help of --method, --model and --gamma is made from them when the CLI is
built (nothing here imports torch). The settings of the ``rule`` and ``solver`` sections besides
the names are the ones the registered DC rules and solvers declare (the fields of their
``Params`` that have help: --weighting, --rho, --eta), so a piece with a parameter of its own
is a setting, an option and a config key with no edit here. docs/architecture.md, *Dehazing
settings*.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from usdehaze.core.dc_rules import DC_RULES
from usdehaze.core.registry import param_names
from usdehaze.core.solvers import SOLVERS
from usdehaze.errors import UsageError
from usdehaze.ultrasound.methods import METHODS, method_of
from usdehaze.ultrasound.models import DATA_MODELS

# whose network Jacobians the joint DC step back-propagates; the others use a Gaussian prior's
JACOBIANS = ("both", "haze", "tissue", "none")

# the sections of a DehazeConfig besides its top-level ``method`` (each field's metadata names
# its own): the data model and its parameters, the sampler, where and how the networks run,
# and which priors (and student) a run loads
SECTIONS = ("model", "sampler", "rule", "solver", "runtime", "priors")
# the sections whose settings the registered pieces declare (their Params fields with help)
PIECE_SECTIONS = {"rule": DC_RULES, "solver": SOLVERS}
# the dehazer's own default of a piece's setting, where it differs from the piece's (the core
# rules' weighting defaults to paper, the paper's step; the dehazer runs variance)
PIECE_DEFAULTS: dict[str, Any] = {"weighting": "variance"}


RESIDUALS = ("split", "keep")  # DehazeConfig.residual: the iq model's y − x − h
NOISE = ("shared", "per-frame")  # DehazeConfig.noise: the sampler's draws across frames


def _setting(default: Any, section: str | None, help: str | Callable[[], str], **meta: Any):
    """A DehazeConfig field: its default, its ``section`` (None: the top level, as ``method``)
    and its command-line help (a string, or a function that makes it from a registry when the
    CLI is built); ``path``: the option takes a file or folder; ``unit``: what a number is
    measured in (every float setting says); ``unset``: what a default of None means. The
    options of ``usdehaze run`` and ``run-many`` are made from these (usdehaze.cli._options),
    nothing else lists them; their ``--help`` shows each default (setting_default)."""
    return field(default=default, metadata={"section": section, "help": help, **meta})


def _model_help() -> str:
    """--model's help, from the registered data models (usdehaze.ultrasound.models)."""
    default = DehazeConfig.model
    said = [
        f"{n} ({'default; ' if n == default else ''}{m.summary})"
        for n, m in sorted(DATA_MODELS.items(), key=lambda kv: kv[0] != default)
    ]
    return "Data model for joint: " + ", ".join(said[:-1]) + f" or {said[-1]}."


def _method_help() -> str:
    """--method's help, from the registered methods (usdehaze.ultrasound.methods); a method
    with its own sampler settings (the single-prior baselines) names them."""
    default = DehazeConfig.method
    said = []
    for n, m in METHODS.items():
        own = ", ".join(f"{k.replace('_', '-')} {_shown(v)}" for k, v in _own_differing(m).items())
        own = f"; its own defaults: {own}" if own else ""
        said.append(f"{n} ({'default; ' if n == default else ''}{m.summary}{own})")
    return ", ".join(said[:-1]) + f" or {said[-1]}."


def _own_differing(method: Any) -> dict[str, Any]:
    """A method's own settings (its ``Params``) where they differ from the joint defaults."""
    joint = DehazeConfig.settings()
    return {k: v for k, v in method.own_settings().items() if v != joint[k].default}


def _shown(value: Any) -> str:
    """A setting's value as --help writes it: 3.0 as 3, True as on."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting_default(name: str) -> str:
    """What --help shows as a setting's default: its value (and unit), the methods whose own
    default differs (``25; dps, pigdm-gauss: 5``), or what None means (``unset``)."""
    f = DehazeConfig.settings()[name]
    if f.default is None:
        return f.metadata.get("unset", "none")
    unit = f.metadata.get("unit", "")
    text = f"{_shown(f.default)} {unit}".rstrip()
    own: dict[str, list[str]] = {}
    for n, m in METHODS.items():
        settings = _own_differing(m)
        if name in settings:
            own.setdefault(_shown(settings[name]), []).append(n)
    return "; ".join([text, *(f"{', '.join(ns)}: {v}" for v, ns in own.items())])


def _choices(names: Iterable[str], default: str) -> str:
    """'a (default), b or c': a setting's registered choices, its default first."""
    said = sorted(dict.fromkeys(names), key=lambda n: n != default)
    said = [f"{n} (default)" if n == default else n for n in said]
    return ", ".join(said[:-1]) + f" or {said[-1]}" if len(said) > 1 else said[0]


def _rule_help() -> str:
    """--rule's help, from the registered DC rules (usdehaze.core.dc_rules)."""
    return f"Data consistency: {_choices(DC_RULES, DehazeConfig.rule)}."


def _solver_help() -> str:
    """--solver's help, from the registered prior steps (usdehaze.core.solvers)."""
    return f"Prior step: {_choices(SOLVERS, DehazeConfig.solver)}."


def _gamma_help() -> str:
    """--gamma's help: the data models that read γ (their declared ``params``)."""
    names = [n for n, m in DATA_MODELS.items() if "gamma" in m.params]
    return f"Dehazing strength γ ({' and '.join(names)} models)."


# the numeric settings' bounds (minimum or None, maximum, must be > 0): wide around every value
# that makes sense, narrow enough that no setting can overflow the sampler (issue 31: --lam
# 1e30, --eta 1e30 and --start-sigma 1e-30 gave NaN results or a math domain error)
SETTING_RANGES: dict[str, tuple[float | None, float, bool]] = {
    "jacobian_variance": (None, 1e3, True),
    "start_sigma": (1e-3, 1e3, True),  # the VE SDE's σ runs from 0.01 to 25
    "lam": (None, 1e3, True),
    "kappa": (None, 1e3, True),
    "gamma": (1e-3, 1e3, True),
    "noise_sigma": (None, 1e2, True),
    "dynamic_range": (1.0, 200.0, True),
    "haze_init_db": (-200.0, 200.0, False),
}


def setting_ranges() -> dict[str, tuple[float | None, float, bool]]:
    """Every bounded setting: SETTING_RANGES and the ``range`` each piece setting declares."""
    pieces = DehazeConfig.piece_settings()
    declared = {n: f.metadata["range"] for n, f in pieces.items() if "range" in f.metadata}
    return {**SETTING_RANGES, **declared}


def _piece_setting(section: str, f: Field) -> Field:
    """A piece's declared parameter as a config setting: its default (or the dehazer's own,
    PIECE_DEFAULTS), its help, unit and range, in ``section``."""
    g = field(
        default=PIECE_DEFAULTS.get(f.name, f.default), metadata={**f.metadata, "section": section}
    )
    g.name, g.type = f.name, f.type
    return g


@dataclass(init=False)
class DehazeConfig:
    """Settings of a dehazing run (all recorded in the output).

    Flat attributes (``cfg.steps``, ``cfg.eta``), each setting tagged with its section
    (``SECTIONS``) and its command-line help; ``nested()`` is the same settings grouped by
    section, and ``from_dict`` takes either form (docs/architecture.md, *Dehazing settings*).
    The fields below are the dehazer's own settings; the rule and solver sections' parameters
    (``weighting``, ``rho``, ``eta``, and those of a piece registered later) are the pieces'
    declarations (``piece_settings``), held in ``params`` and read as attributes the same way.
    ``settings()`` lists both; ``flat()`` is every setting by name, as results record it."""

    method: str = _setting("auto", None, _method_help)
    model: str = _setting("iq", "model", _model_help)
    rule: str = _setting("dps", "rule", _rule_help)
    steps: int = _setting(25, "sampler", "Sampler steps.")
    solver: str = _setting("em", "solver", _solver_help)
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
        unit="(σ², in the priors' data units: images scaled to [-1, 1])",
    )
    start_sigma: float = _setting(
        3.0,
        "sampler",
        "Late start (CCDF): the diffusion noise level σ the sampler starts from (the priors' "
        "SDE runs σ from 0.01 to 25).",
        unit="(σ, in the priors' data units: images scaled to [-1, 1])",
    )
    lam: float = _setting(
        3.0, "sampler", "Tissue data-consistency weight λ.", unit="(a weight, no unit)"
    )
    kappa: float = _setting(
        3.0, "sampler", "Haze data-consistency weight κ (joint method).", unit="(a weight, no unit)"
    )
    gamma: float = _setting(1.0, "model", _gamma_help, unit="(a power, no unit)")
    haze_init_db: float = _setting(
        -20.0,
        "model",
        "The haze's starting guess: the input this many dB lower (joint method).",
        unit="dB",
    )
    residual: str = _setting(
        "split",
        "model",
        "What the joint sampler's tissue and haze leave of the input I/Q unexplained (iq "
        "model): split (default) hands it back to both by their local power, so that they add "
        "up to the input exactly; keep leaves them as sampled (docs/method.md).",
    )
    noise_sigma: float = _setting(
        0.2,
        "model",
        "Gaussian noise σ of y = x + n for the single-prior baselines (dps, pigdm-gauss; on "
        "images scaled to [-1, 1]) and bm3d's noise level.",
        unit="(σ, in units of the images scaled to [-1, 1]: 1 is half the dynamic range)",
    )
    samples: int = _setting(1, "sampler", "Posterior samples per frame (std saved when > 1).")
    seed: int = _setting(0, "sampler", "Random seed.")
    noise: str = _setting(
        "shared",
        "sampler",
        "Sampler noise across frames: shared (every frame draws the seed's noise, so a cine's "
        "frames change no more than the input's; docs/results.md) or per-frame (frame i draws "
        "seed + i).",
    )
    device: str = _setting("auto", "runtime", "auto, cpu or cuda.")
    dynamic_range: float = _setting(
        60.0,
        "model",
        "dB kept below each frame's maximum: the log models' input scale and the "
        "result's clip; dB priors must be trained with the same.",
        unit="dB",
    )
    batch: int = _setting(4, "runtime", "Frames per sampler batch.")
    threads: int = _setting(
        0,
        "runtime",
        "CPU threads for the networks: 0 (auto) keeps OMP_NUM_THREADS where it is set, else "
        "takes the cores this process may use less the machine's current load (at least 1): "
        "threads beyond the free cores slow a run down (docs/cli.md, Threads).",
    )
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
        "Network precision: auto (bf16 on CUDA; on CPU bf16 for the fast method where the CPU "
        "has AMX, else fp32), fp32, bf16, fp16.",
    )
    tissue_prior: str | None = _setting(
        None,
        "priors",
        "Tissue prior (.safetensors + .json).",
        path=True,
        unset="the --priors folder's, else the shipped one for --model",
    )
    haze_prior: str | None = _setting(
        None,
        "priors",
        "Haze prior (.safetensors + .json).",
        path=True,
        unset="the --priors folder's, else the shipped one for --model",
    )
    priors: str | None = _setting(
        None,
        "priors",
        "Folder with both priors, e.g. from usdehaze adapt (--tissue-prior/--haze-prior "
        "override one).",
        path=True,
        unset="the shipped priors (usdehaze/weights)",
    )
    student: str | None = _setting(
        None,
        "priors",
        "Method fast: the one-pass student (.safetensors + .json).",
        path=True,
        unset="the --priors folder's student for the model (student_iq, student_bmode), else "
        "the shipped one",
    )

    # the pieces' settings by name (their defaults unless given); not a setting itself
    params: dict[str, Any] = field(default_factory=dict, metadata={"section": "", "help": ""})

    def __init__(self, **given: Any) -> None:
        """Any setting by name, the pieces' as the dehazer's own (``replace(cfg, eta=0)``)."""
        pieces = self.piece_settings()
        params = {n: f.default for n, f in pieces.items()}
        params.update(given.pop("params", None) or {})
        for f in fields(self):
            if f.name != "params":
                setattr(self, f.name, given.pop(f.name, f.default))
        for name in [k for k in given if k in pieces]:
            params[name] = given.pop(name)
        if given:
            raise TypeError(f"DehazeConfig: unknown setting(s) {', '.join(sorted(given))}")
        self.params = params

    def __getattr__(self, name: str) -> Any:  # a piece's setting: cfg.eta
        params = self.__dict__.get("params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"DehazeConfig has no setting '{name}'")

    @staticmethod
    def piece_settings() -> dict[str, Field]:
        """The settings the registered rules and solvers declare (their ``Params`` fields with
        help), by name, each in its piece's section; a name several pieces declare (every
        rule's ``weighting``) is one setting, the first registered piece's declaration."""
        out: dict[str, Field] = {}
        for section, registry in PIECE_SECTIONS.items():
            for piece in registry.values():
                params = getattr(piece, "Params", None)
                for f in fields(params) if params is not None else ():
                    if f.metadata.get("help") and f.name not in out:
                        out[f.name] = _piece_setting(section, f)
        return out

    def _check_unused_params(self, method: Any, source: str) -> None:
        """A rule's or solver's parameter set away from its default, where the rule and solver
        this run builds do not declare it (``--eta`` with solver em, ``--rho`` with rule
        pigdm), is one line instead of a setting silently unused."""
        run = method.defaults(self)  # a method's own solver (the single-prior baselines: ddim)
        own_rule = getattr(method, "rule", "")  # the single-prior baselines' rule is their own
        rule = own_rule or run.rule
        pieces = {"rule": rule, "solver": run.solver}
        if pieces["rule"] not in DC_RULES or pieces["solver"] not in SOLVERS:
            return  # the name itself is refused below
        used = {*param_names(DC_RULES[rule]), *param_names(SOLVERS[run.solver])}
        for name, f in self.piece_settings().items():
            value = getattr(self, name)
            if name in used or value == f.default:
                continue
            section = f.metadata["section"]
            owners = [n for n, p in PIECE_SECTIONS[section].items() if name in param_names(p)]
            fixed = section == "rule" and bool(own_rule)
            how = (
                f"leave {name} out"
                if fixed
                else f"set --{section} {owners[0]}, or leave {name} out"
            )
            whose = f" (method {method.name}'s)" if fixed else ""
            raise UsageError(
                f"{source}: {name} {value}: a setting of {section} {' or '.join(owners)}; this "
                f"run's {section} is {pieces[section]}{whose}, which does not use it ({how})"
            )

    @classmethod
    def settings(cls) -> dict[str, Field]:
        """Every setting by name (the fields and the pieces' declarations), as Fields: name,
        default, metadata (section, help, unit, unset, path, range)."""
        own = {f.name: f for f in fields(cls) if f.name != "params"}
        return {**own, **cls.piece_settings()}

    def flat(self) -> dict[str, Any]:
        """Every setting by name: what results and run-many stores record (``from_dict`` takes
        it back)."""
        return {n: getattr(self, n) for n in self.settings()}

    def validate(self, source: str = "config") -> DehazeConfig:
        method = method_of(self.method, source)  # an unknown method or model: one line
        DATA_MODELS.lookup(self.model, source)
        method.check(self, source)  # its models, samples > 1, the rules the model allows
        from usdehaze.core.sampler import PRECISIONS, SCHEDULES

        for name, allowed in (
            ("solver", SOLVERS),
            ("schedule", SCHEDULES),
            ("jacobian", JACOBIANS),
            ("precision", ("auto", *PRECISIONS)),
            ("noise", NOISE),
            ("residual", RESIDUALS),
        ):
            if getattr(self, name) not in allowed:
                raise UsageError(
                    f"{source}: {name} '{getattr(self, name)}': expected one of {', '.join(allowed)}"
                )
        from usdehaze import limits

        # finite and within SETTING_RANGES: a 0, negative, NaN or huge value gives all-NaN
        # or all-0 dB frames (--lam 1e30), or a math error deep in the sampler
        for name, (low, high, positive) in setting_ranges().items():
            limits.number(
                getattr(self, name),
                f"{source}: key '{name}'",
                positive=positive,
                minimum=low,
                maximum=high,
            )
        limits.seed(self.seed, f"{source}: key 'seed'")
        self._check_unused_params(method, source)
        if not 0 <= self.threads <= limits.MAX_THREADS:
            raise UsageError(
                f"{source}: threads {self.threads}: expected 0 (auto) to {limits.MAX_THREADS}"
            )
        for f in fields(self):  # --tissue-prior '' (read as '.'): a path that names no file
            value = getattr(self, f.name)
            if not f.metadata.get("path") or value is None:
                continue
            if not str(value).strip():
                raise UsageError(f"{source}: key '{f.name}': empty, expected a path")
            if f.name != "priors" and Path(value).name in ("", ".."):
                raise UsageError(
                    f"{source}: key '{f.name}': {str(value)!r} names a folder, expected a "
                    "weights file (NAME for NAME.safetensors + NAME.json)"
                )
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
        return tuple(n for n, f in cls.settings().items() if f.metadata["section"] == section)

    def nested(self) -> dict[str, Any]:
        """The settings grouped by section: ``{"method": ..., "model": {"model": ..., "gamma":
        ...}, "sampler": {...}, "rule": {"rule": ..., "weighting": ...}, "solver": {...},
        "runtime": {...}, "priors": {...}}``; ``from_dict`` takes it."""
        flat = self.flat()
        out: dict[str, Any] = {k: flat[k] for k in self.keys(None)}
        for section in SECTIONS:
            out[section] = {k: flat[k] for k in self.keys(section)}
        return out

    @classmethod
    def flatten(
        cls, d: Mapping[str, Any], source: str = "config", old: list[tuple[str, str]] | None = None
    ) -> dict[str, Any]:
        """A config mapping with sections (``sampler: {steps: 10}``), flat keys (``steps: 10``)
        or both → flat keys. A section is a mapping under a section's name (``model``,
        ``rule``, ``solver`` and ``priors`` are also fields: a string there is the field); a key
        in the wrong section, or given twice with different values, is one line. The old
        spellings (a section's setting as a flat key; a rule or solver setting under
        ``sampler``, where they were before those sections) are read, each appended to ``old``
        as (key, its section) for build_config's one line."""
        where: dict[str, str] = {}
        out: dict[str, Any] = {}
        old = [] if old is None else old

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

        known = {n: f.metadata["section"] for n, f in cls.settings().items()}
        for k, v in d.items():
            if k not in SECTIONS or (k in known and not isinstance(v, Mapping)):
                if known.get(k) and k not in SECTIONS:  # a section's key, flat: old spelling
                    old.append((k, known[k]))
                put(k, v, k)
                continue
            for sub, value in cls._section(k, v, source).items():
                place = known.get(sub, "")
                if place != k and not (k == "sampler" and place in PIECE_SECTIONS):
                    _misplaced(source, k, sub, place, cls.keys(k))
                if place != k:  # under sampler, as before the rule and solver sections
                    old.append((sub, place))
                put(sub, value, f"{k}.{sub}")
        return out

    @classmethod
    def _section(cls, k: str, v: Any, source: str) -> Mapping[str, Any]:
        """Section ``k``'s mapping; anything else (null too: ``sampler:`` whose settings lost
        their indent, issue 31 item 6, would run the defaults without a word) is one line."""
        if isinstance(v, Mapping):
            return v
        got = "nothing (an empty section: indent its settings under it)" if v is None else repr(v)
        raise UsageError(
            f"{source}: key '{k}': expected a mapping of {k} settings "
            f"({', '.join(cls.keys(k))}), got {got}"
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> DehazeConfig:
        """A validated config from flat keys, sections (``nested()``'s form) or both."""
        d = cls.flatten(d, source)
        known = {n: f.default for n, f in cls.settings().items()}
        for k, v in d.items():
            if k not in known:
                raise UsageError(
                    f"{source}: key '{k}': unknown (expected one of {sorted(known)}, or a "
                    f"section: {', '.join(SECTIONS)})"
                )
            _check_type(source, k, v, known[k])
        return cls(**d).validate(source)


def _misplaced(source: str, section: str, key: str, place: str | None, has: Iterable[str]):
    """One line for ``section.key`` that is not a setting of that section."""
    said = f"{source}: key '{section}.{key}': "
    if place is None:
        raise UsageError(said + "a top-level setting (write it outside the sections)")
    if place:
        raise UsageError(said + f"a {place} setting (write it under {place})")
    raise UsageError(said + f"unknown (section {section} has {', '.join(has)})")


def old_spelling_note(source: str, old: list[tuple[str, str]]) -> str:
    """The one line saying a config's new spelling: each old key under its section."""
    by: dict[str, list[str]] = {}
    for key, section in old:
        by.setdefault(section, []).append(key)
    said = "; ".join(f"{s}: {', '.join(dict.fromkeys(ks))}" for s, ks in by.items())
    return (
        f"{source}: old spelling (read as before); the new one puts these keys in sections: "
        f"{said} (configs/dehaze_default.yaml)"
    )


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
# (device, batch, CPU threads, network precision, compilation, memory layout, CUDA graphs); a resumed
# run-many may change them
RUNTIME_KEYS = DehazeConfig.keys("runtime")


def build_config(config: str | Path | None, overrides: dict[str, Any]) -> DehazeConfig:
    """DehazeConfig from defaults, then the YAML file (sections; the old flat spelling is read
    and said in one line on stderr once the config is valid), then the given overrides (flat
    keys: command-line options; None: not given); a method takes its own settings where none
    were given. Used by the CLI (run, run-many, evaluate, bench) and the pipelines."""
    from usdehaze.config import read_yaml

    old: list[tuple[str, str]] = []
    values = DehazeConfig.flatten(read_yaml(config), str(config), old) if config else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = method_settings(DehazeConfig.from_dict(values, str(config or "options")))
    if old:  # a flat file (or rule and solver settings under sampler): read, said once
        print(f"usdehaze: note: {old_spelling_note(str(config), old)}", file=sys.stderr)
    return cfg


def method_settings(cfg: DehazeConfig) -> DehazeConfig:
    """``cfg`` with its method's own sampler settings in place of each joint default it kept
    (the single-prior baselines'); settings changed from the defaults stay as given."""
    return METHODS[cfg.method].defaults(cfg)
