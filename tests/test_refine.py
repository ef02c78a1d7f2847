"""``refine`` (issue 29 item 2): the student's estimate as the joint sampler's late start."""

from __future__ import annotations

import numpy as np
import pytest

from usdehaze.errors import UsageError
from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
from usdehaze.ultrasound.logcomp import mulaw_to_iq, to_db
from usdehaze.ultrasound.methods import METHODS


def _iq(n=2, shape=(40, 24), seed=0):
    r = np.random.default_rng(seed)
    return (r.standard_normal((n, *shape)) + 1j * r.standard_normal((n, *shape))).astype(
        np.complex64
    )


def _cfg(tiny_student, tiny_iq_priors, **kw):
    t, h = tiny_iq_priors
    kw = {"method": "refine", **kw}
    return DehazeConfig(
        student=str(tiny_student), tissue_prior=str(t), haze_prior=str(h), device="cpu", **kw
    )


def test_the_start_decodes_to_the_students_estimate_on_the_inputs_phase():
    from usdehaze.ultrasound.models.iq import IQ

    cfg = DehazeConfig(method="refine", gamma=0.7)
    iq = _iq()
    m = IQ(cfg).encode(iq, "cpu")
    rng = np.random.default_rng(1)
    # no value reaches the μ-law's clip: ref <= √2 max(|I|, |Q|), the haze is divided by γ
    est = {
        "tissue": rng.uniform(-50, -4, iq.shape).astype(np.float32),
        "haze": rng.uniform(-50, -7, iq.shape).astype(np.float32),
    }
    x, n = METHODS["refine"].warm_start(iq, est, m.context, cfg)
    scale, ref = m.context["scale"], m.context["ref"]
    tissue = mulaw_to_iq(x.numpy(), scale)
    haze = cfg.gamma * mulaw_to_iq(n.numpy(), scale)  # as the haze adds to the input
    np.testing.assert_allclose(to_db(tissue, 60, ref), est["tissue"], atol=1e-3)
    np.testing.assert_allclose(to_db(haze, 60, ref), est["haze"], atol=1e-3)
    np.testing.assert_allclose(np.angle(tissue * np.conj(iq)), 0, atol=1e-3)


def test_its_own_settings_and_what_a_run_counts(tiny_student, tiny_iq_priors):
    d = Dehazer(_cfg(tiny_student, tiny_iq_priors))
    assert (d.cfg.steps, d.cfg.start_sigma) == (4, 0.25)  # in place of the joint defaults
    out = d.dehaze_iq(_iq())
    assert set(out) == {"input", "tissue", "haze"}
    assert d.nfe == d.method.sampler(d).planned_nfe() + 1 == 2 * 4 + 1  # and the student's
    given = Dehazer(_cfg(tiny_student, tiny_iq_priors, steps=2, samples=2))
    assert given.cfg.steps == 2  # a setting given stays
    assert {"tissue_std", "haze_std"} <= set(given.dehaze_iq(_iq()))  # posterior samples


def test_it_starts_from_the_student_not_the_input(tiny_student, tiny_iq_priors, monkeypatch):
    """A start at a tiny σ with one step stays by its start: a student that answers -30 dB
    tissue and haze everywhere gives a tissue near -30 dB, far from the input (the sample as
    drawn, residual keep: split would hand the input it misses back to the tissue)."""
    from usdehaze.ultrasound import student

    def flat(net, iq, dynamic_range, *args):
        db = np.full(iq.shape, -30.0, np.float32)
        return {"input": student.encode(iq, dynamic_range)[0], "tissue": db, "haze": db}

    monkeypatch.setattr(student, "run", flat)
    cfg = _cfg(
        tiny_student,
        tiny_iq_priors,
        steps=1,
        start_sigma=0.011,
        lam=1e-6,
        kappa=1e-6,
        residual="keep",
    )
    out = Dehazer(cfg).dehaze_iq(_iq())
    assert np.median(np.abs(out["tissue"] + 30)) < 1.0
    assert np.median(np.abs(out["input"] + 30)) > 10


@pytest.mark.parametrize(
    "method, message", [("for_magnitude_data", "magnitude-only"), ("for_display_data", "B-mode")]
)
def test_it_refuses_data_without_phase_in_one_line(method, message):
    with pytest.raises(UsageError, match=f"method refine .*{message}"):
        getattr(METHODS["refine"], method)(DehazeConfig(method="refine"))


def test_evaluate_has_its_row_when_a_student_is_found(tiny_student, tmp_path):
    base = DehazeConfig(student=str(tiny_student))
    ((label, cfg),) = METHODS["refine"].rows(base).items()
    # the default marks it: auto runs refine on beamformed I/Q with a student that fits
    assert label == "refine (student + 4 joint steps from σ = 0.25, default)"
    assert cfg.method == "refine"
    assert METHODS["refine"].rows(DehazeConfig(student=str(tmp_path / "none.safetensors"))) == {}
