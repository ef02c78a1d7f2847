"""The registered methods (usdehaze.ultrasound.methods): what each declares, and that adding one
is one class (docs/architecture.md's example runs through Dehazer, run_dehaze and evaluate)."""

import pkgutil
from pathlib import Path

import numpy as np
import pytest

import usdehaze.ultrasound.methods as methods_pkg
from tests.conftest import memory_scan
from usdehaze.errors import UsageError
from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer, run_dehaze
from usdehaze.ultrasound.methods import METHODS, run_model
from usdehaze.ultrasound.models import DATA_MODELS
from usdehaze.ultrasound.results import load_result

ROOT = Path(__file__).parents[1]


def _iq(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 40, 32)) + 1j * rng.normal(size=(n, 40, 32))).astype(np.complex64)


def test_every_module_of_the_package_registers_a_method():
    modules = {m.name for m in pkgutil.iter_modules(methods_pkg.__path__)} - {"base"}
    registered = {cls.__module__.rsplit(".", 1)[1] for cls in METHODS.values()}
    assert modules <= registered
    assert list(METHODS)[:6] == ["auto", "joint", "fast", "dps", "pigdm-gauss", "bm3d"]


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_declares_what_it_loads_and_reads(name):
    cls = METHODS[name]
    assert cls.summary and set(cls.priors) <= {"student", "tissue", "haze"}
    for model in cls.models or DATA_MODELS:
        cfg = DehazeConfig(method=name, model=model)
        assert run_model(cfg).name in DATA_MODELS
        if not cls.stepwise:  # no sampler: nothing its settings would change
            assert cls.defaults(cfg) == cfg
    if cls.models:  # fast: iq only, refused in one line for another model
        other = next(m for m in DATA_MODELS if m not in cls.models)
        with pytest.raises(UsageError, match=f"model '{other}': method {name}"):
            DehazeConfig(method=name, model=other).validate()
    if not cls.multi_sample:
        with pytest.raises(UsageError, match="samples 2"):
            DehazeConfig(method=name, samples=2).validate()


def test_single_prior_methods_read_a_db_model_with_its_own_priors():
    """dps / pigdm-gauss / bm3d read the additive model for iq and logsum (the shipped dB
    priors), and any other model on dB images itself (its own priors: a B-mode model, say)."""
    for model in ("iq", "logsum", "additive"):
        for method in ("dps", "pigdm-gauss", "bm3d"):
            assert run_model(DehazeConfig(method=method, model=model)).name == "additive"
    assert run_model(DehazeConfig(method="joint", model="logsum")).name == "logsum"
    assert run_model(DehazeConfig(method="fast")).name == "iq"


@pytest.fixture
def passthrough():
    """docs/architecture.md's example method, registered for one test."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    code = doc.split("<!-- example: method -->\n```python\n")[1].split("```")[0]
    exec(code, {})
    yield METHODS["passthrough"]
    METHODS.pop("passthrough")


def test_the_architecture_docs_example_method_runs(passthrough, tmp_path):
    from usdehaze.ultrasound.dehaze_config import DehazeConfig as Config
    from usdehaze.ultrasound.evaluate import default_methods

    help_text = Config.__dataclass_fields__["method"].metadata["help"]()
    assert "passthrough (the input unchanged)" in help_text
    with pytest.raises(UsageError, match="samples 2: method passthrough") as e:
        DehazeConfig(method="passthrough", samples=2).validate()
    assert "\n" not in str(e.value)
    cfg = DehazeConfig(method="passthrough", device="cpu")
    d = Dehazer(cfg)
    assert d.priors == {} and d.student is None and d.operator() is None
    out = d.dehaze_iq(_iq())
    np.testing.assert_array_equal(out["tissue"], out["input"])
    assert (out["haze"] == -cfg.dynamic_range).all() and d.nfe == 0
    path = run_dehaze(memory_scan(), tmp_path / "p.h5", cfg)
    with load_result(path) as r:
        assert r.attrs["method"] == "passthrough" and r.attrs["nfe"] == 0
        np.testing.assert_array_equal(r.frames("tissue"), r.frames("input"))
    assert default_methods(cfg)["input as tissue"].method == "passthrough"


def test_a_db_model_registered_later_runs_with_the_single_prior_methods(tiny_priors):
    """A data model on dB images registered without naming a single-prior model (as a B-mode
    model would be) runs with dps on its own priors, by its registration alone."""
    from usdehaze.ultrasound.logcomp import DB
    from usdehaze.ultrasound.models import DbModel, register_model

    @register_model
    class Plain(DbModel):
        name, label, domain, prior_suffix = "plain", "plain", DB, ""

        @classmethod
        def operator_type(cls):
            from usdehaze.ultrasound.measurement import Additive

            return Additive

        def operator(self):
            return self.operator_type()()

    try:
        t, _ = tiny_priors
        cfg = DehazeConfig(method="dps", model="plain", tissue_prior=str(t), steps=2, device="cpu")
        d = Dehazer(cfg)
        assert d.model.name == "plain" and set(d.priors) == {"tissue"}
        out = d.dehaze_iq(_iq(1), frames=[0])
        assert np.isfinite(out["tissue"]).all() and d.nfe == 2
    finally:
        DATA_MODELS.pop("plain")


def test_auto_runs_refine_on_iq_where_its_student_fits_else_joint(tiny_student):
    """auto on beamformed I/Q: refine with the shipped priors and student (distilled at 60 dB);
    the joint sampler with priors of one's own, a dB model, or a dynamic range the shipped
    student was not distilled at; a student one gives keeps refine (a misfit is refused then)."""
    from usdehaze.ultrasound.student import runs_at, student_path

    assert runs_at(student_path(None, None, "iq"), 60.0)
    assert not runs_at(student_path(None, None, "iq"), 30.0)
    resolved = lambda **kw: METHODS["auto"].resolve(DehazeConfig(**kw)).method  # noqa: E731
    assert resolved() == "refine"
    assert resolved(dynamic_range=30.0) == "joint"
    assert resolved(priors="lab_priors") == "joint"
    assert resolved(model="logsum") == "joint"
    assert resolved(student=str(tiny_student)) == "refine"
