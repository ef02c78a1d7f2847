"""Numeric dehazing settings are bounded once, in the config schema (issue 31 items 1, 4): a
value that would overflow the sampler (NaN results) or break its maths is refused in one line
before any work, and every value inside the bounds is accepted."""

from __future__ import annotations

import pytest

from usdehaze.cli._app import run_app
from usdehaze.errors import UsageError
from usdehaze.ultrasound.dehaze_config import DehazeConfig, setting_ranges


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--lam", "1e30", "key 'lam': expected a number <= 1000"),
        ("--kappa", "1e30", "key 'kappa': expected a number <= 1000"),
        ("--eta", "1e30", "key 'eta': expected a number <= 1"),
        ("--start-sigma", "1e-30", "key 'start_sigma': expected a number >= 0.001"),
        ("--haze-init-db", "1e30", "key 'haze_init_db': expected a number <= 200"),
        ("--dynamic-range", "0.5", "key 'dynamic_range': expected a number >= 1"),
    ],
)
def test_out_of_range_settings_are_one_line_before_any_work(tmp_path, capsys, option, value, said):
    out = tmp_path / "o.h5"
    capsys.readouterr()
    assert run_app(["run", "--demo", "-o", str(out), option, value, "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err
    assert not out.exists()


def _with_its_piece(name: str) -> dict[str, str]:
    """{section: piece} for a rule's or solver's parameter (eta: solver ddim; the default piece
    when it declares it), else {}."""
    from usdehaze.core.dc_rules import DC_RULES
    from usdehaze.core.registry import param_names
    from usdehaze.core.solvers import SOLVERS

    cfg = DehazeConfig()
    for section, registry in (("rule", DC_RULES), ("solver", SOLVERS)):
        first = getattr(cfg, section)
        for piece in sorted(registry, key=lambda p: p != first):
            if name in param_names(registry[piece]):
                return {section: piece}
    return {}


@pytest.mark.parametrize("name", sorted(setting_ranges()))
def test_the_bounds_themselves_are_accepted_and_just_beyond_refused(name):
    """Every bounded setting: the config's own and those the pieces declare (eta, rho)."""
    low, high, positive = setting_ranges()[name]
    own = _with_its_piece(name)  # a piece's parameter is only valid with that piece
    DehazeConfig(**own, **{name: high}).validate()
    with pytest.raises(UsageError, match=f"key '{name}'"):
        DehazeConfig(**own, **{name: high * 1.0001 + 1e-9}).validate()
    if low is not None:
        DehazeConfig(**own, **{name: low}).validate()
        below = low - abs(low) * 1e-4 - 1e-9
        with pytest.raises(UsageError, match=f"key '{name}'"):
            DehazeConfig(**own, **{name: below}).validate()
    if positive:
        with pytest.raises(UsageError, match=f"key '{name}'"):
            DehazeConfig(**own, **{name: 0.0}).validate()
    default = getattr(DehazeConfig(), name)
    assert (low is None or low <= default) and default <= high  # the default lies inside
