"""One registry helper (usdehaze.core.registry): rules, solvers and data models register and
refuse names the same way."""

import pytest

from usdehaze.core.dc_rules import DC_RULES, make_rule
from usdehaze.core.operators import Identity
from usdehaze.core.registry import Registry
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
        make_solver("rk4", VESDE())
    with pytest.raises(UsageError, match="x.yaml: model 'nope': expected one of logsum, "):
        data_model("nope", "x.yaml")
    with pytest.raises(ValueError, match="already registered"):
        DATA_MODELS.register(DATA_MODELS["iq"])
