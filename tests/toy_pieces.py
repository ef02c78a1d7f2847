"""A DC rule and a solver with a parameter of their own each, as a user would add them in one
module (tests/test_piece_params.py registers them for a test, and in a CLI subprocess)."""

from dataclasses import dataclass

from usdehaze.core.dc_rules import DC_RULES, DPS, DPSParams
from usdehaze.core.registry import setting
from usdehaze.core.solvers import SOLVERS, EulerMaruyama, SolverParams

GAIN_HELP = "The toy rule's step scale (rule toy-gain)."
SHRINK_HELP = "The toy solver's factor on each step's result (solver toy-shrink)."


@dataclass(frozen=True)
class GainParams(DPSParams):
    gain: float = setting(1.0, GAIN_HELP, unit="(a factor)", range=(0.0, 10.0, False))


class ToyGain(DPS):
    """DPS with its data-consistency step scaled by ``gain``."""

    name = "toy-gain"
    Params = GainParams

    def step_weights(self, lam, kappa, g, dt):
        wx, wn = super().step_weights(lam, kappa, g, dt)
        return self.params.gain * wx, self.params.gain * wn


@dataclass(frozen=True)
class ShrinkParams(SolverParams):
    shrink: float = setting(1.0, SHRINK_HELP, unit="(a factor)", range=(0.0, 1.0, False))


class ToyShrink(EulerMaruyama):  # Euler–Maruyama with each step's result scaled by shrink
    name, Params = "toy-shrink", ShrinkParams

    def step(self, sde, z, *rest):
        return self.params.shrink * super().step(sde, z, *rest)


def register() -> None:
    DC_RULES.register(ToyGain)
    SOLVERS.register(ToyShrink)


def unregister() -> None:
    DC_RULES.pop(ToyGain.name, None)
    SOLVERS.pop(ToyShrink.name, None)
