"""One registry helper (usdehaze.core.registry): rules, solvers and data models register and
refuse names the same way."""

import pytest

from usdehaze.core.dc_rules import DC_RULES, make_rule
from usdehaze.core.operators import Identity
from usdehaze.core.registry import Registry, param_names
from usdehaze.core.sde import VESDE
from usdehaze.core.solvers import SOLVERS, make_solver
from usdehaze.errors import UsageError
from usdehaze.ultrasound.models import DATA_MODELS, data_model


def test_register_keeps_order_and_refuses_empty_duplicate_or_incomplete_names():
    reg: Registry[type] = Registry("widget", requires=("colour",))

    @reg.register
    class B:
        name, colour = "b", "red"

    @reg.register
    class A:
        name, colour = "a", "blue"

    assert list(reg) == ["b", "a"] and reg.lookup("a") is A
    for name, colour in (("b", "green"), ("", "green"), ("c", "")):
        cls = type("X", (), {"name": name, "colour": colour})
        with pytest.raises(ValueError):
            reg.register(cls)
    assert list(reg) == ["b", "a"]


def test_an_unknown_name_is_one_line_naming_source_kind_and_choices():
    reg: Registry[type] = Registry("widget")
    reg.register(type("W", (), {"name": "w1"}))
    with pytest.raises(UsageError, match=r"^cfg.yaml: widget 'w2': expected one of w1$"):
        reg.lookup("w2", "cfg.yaml")
    with pytest.raises(UsageError, match=r"^widget '\[1\]': expected one of w1$"):
        reg.lookup([1])  # an unhashable value from a config file is refused the same way


def test_the_package_registries_are_registries():
    assert all(isinstance(r, Registry) for r in (DC_RULES, SOLVERS, DATA_MODELS))
    with pytest.raises(UsageError, match="rule 'foo': expected one of pigdm, dps, projection"):
        make_rule("foo", Identity())
    with pytest.raises(UsageError, match="solver 'rk4': expected one of em, ddim, heun"):
        make_solver("rk4")
    with pytest.raises(UsageError, match="x.yaml: model 'nope': expected one of logsum, "):
        data_model("nope", "x.yaml")
    with pytest.raises(ValueError, match="already registered"):
        DATA_MODELS.register(DATA_MODELS["iq"])


def test_each_rule_and_solver_is_built_with_its_own_parameters_only():
    """A piece declares its parameters (``Params``) and takes those alone: DPS's ρ is DPS's,
    DDIM's η is DDIM's; another piece's parameter is one line naming what it has."""
    assert make_rule("dps", Identity(), rho=0.5).params.rho == 0.5
    assert make_rule("pigdm", Identity(), weighting="sde").params.weighting == "sde"
    assert make_solver("ddim", eta=0.0).params.eta == 0.0
    with pytest.raises(UsageError, match=r"^rule 'pigdm': no parameter 'rho' \(its parameters: "):
        make_rule("pigdm", Identity(), rho=0.5)
    with pytest.raises(UsageError, match=r"^rule 'projection': no parameter 'noise_jacobian'"):
        make_rule("projection", Identity(), noise_jacobian=0.5)
    with pytest.raises(
        UsageError, match=r"^solver 'heun': no parameter 'eta' \(its parameters: none\)$"
    ):
        make_solver("heun", eta=0.0)
    assert {n: param_names(c) for n, c in SOLVERS.items()} == {
        "em": (),
        "ddim": ("eta",),
        "heun": (),
    }
    assert "rho" in param_names(DC_RULES["dps"])
    assert all("rho" not in param_names(c) for n, c in DC_RULES.items() if n != "dps")


def test_the_sampler_takes_built_pieces_not_names():
    import torch

    from usdehaze.core.priors import GaussianPrior
    from usdehaze.core.sampler import JointSampler

    sde = VESDE()
    prior = GaussianPrior(torch.zeros(1, 4), torch.eye(4, dtype=torch.float64), sde)
    with pytest.raises(
        UsageError, match=r"expected a built rule \(make_rule\(\.\.\.\)\), got 'dps'"
    ):
        JointSampler(prior, prior, "dps", sde)
    with pytest.raises(
        UsageError, match=r"expected a built solver \(make_solver\(\.\.\.\)\), got 'ddim'"
    ):
        JointSampler(prior, prior, make_rule("dps", Identity()), sde, "ddim")
    s = JointSampler(prior, prior, make_rule("dps", Identity()), sde, make_solver("ddim", eta=0.0))
    assert s.op is s.dc.model and s.prior_step.params.eta == 0.0


def test_the_config_builds_each_piece_with_the_settings_it_declares():
    """build_pieces, the one place a config's rule and solver names are looked up: each piece
    gets the config's settings of its parameters' names (a method's own values first)."""
    from usdehaze.ultrasound.dehaze_config import DehazeConfig
    from usdehaze.ultrasound.pieces import build_pieces

    cfg = DehazeConfig(rule="dps", weighting="sde", solver="ddim", eta=0.25)
    rule, solver = build_pieces(cfg, Identity())
    assert (rule.name, rule.params.weighting, solver.name, solver.params.eta) == (
        "dps",
        "sde",
        "ddim",
        0.25,
    )
    rule, solver = build_pieces(cfg, Identity(), "pigdm", weighting="paper", noise_jacobian=0.5)
    assert (rule.name, rule.params.weighting, rule.params.noise_jacobian) == ("pigdm", "paper", 0.5)
    rule, solver = build_pieces(DehazeConfig(rule="projection"), Identity())
    assert vars(rule.params) == {"weighting": "variance"} and vars(solver.params) == {}
