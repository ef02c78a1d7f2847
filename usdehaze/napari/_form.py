"""The Dehaze widget's settings form, generated from ``DehazeConfig``'s fields with magicgui.

Each field named in :data:`FORM_FIELDS` gets the widget its kind asks for: a drop-down of the
registered names (methods, data models, rules) or of :data:`DEVICES`, a spin box within the
run's limits (usdehaze.limits), or a path field (typed, or picked with :func:`pick_path`: a
folder for ``priors``, a ``.safetensors`` file otherwise). Its default, tooltip (the field's ``--help``) and empty-field
text (what an unset path means) come from the field, so the form says what ``usdehaze run``
says and a new setting is one name here. Imports no torch (the registries are declarations).
"""

from __future__ import annotations

from typing import Any

FORM_FIELDS = (
    "method",
    "model",
    "rule",
    "steps",
    "samples",
    "device",
    "seed",
    "tissue_prior",
    "haze_prior",
    "priors",
    "student",
)
DEVICES = ("auto", "cpu", "cuda")
LABELS = {"priors": "priors folder"}  # the rest: the field's name, "_" as a space
FOLDERS = ("priors",)  # path fields that take a folder; the others a .safetensors file
QT_INT_MAX = 2**31 - 1  # a QSpinBox holds a C int


def choices(name: str) -> tuple[str, ...] | None:
    """The registered names a field takes (None: not a choice)."""
    from usdehaze.core.dc_rules import DC_RULES
    from usdehaze.ultrasound.methods import METHODS
    from usdehaze.ultrasound.models import DATA_MODELS

    named = {"method": METHODS, "model": DATA_MODELS, "rule": DC_RULES, "device": DEVICES}
    return tuple(named[name]) if name in named else None


def int_range(name: str) -> tuple[int, int]:
    """The bounds a run accepts for an integer field (usdehaze.limits)."""
    from usdehaze import limits

    if name == "seed":
        return 0, min(limits.SEED_MAX, QT_INT_MAX)
    return 1, limits.MAX_SAMPLER.get(name, QT_INT_MAX)


def _help(f: Any) -> str:
    text = f.metadata.get("help", "")
    return text() if callable(text) else str(text)


def field_widget(f: Any) -> Any:
    """The magicgui widget of one DehazeConfig field, at its default, its help as tooltip."""
    from magicgui import widgets

    options = choices(f.name)
    if options is not None:
        w = widgets.ComboBox(choices=options, value=f.default)
    elif f.metadata.get("path"):  # typed, or picked with the widget's "…" (pick_path)
        w = widgets.LineEdit(value="")
        w.native.setPlaceholderText(f"default: {f.metadata.get('unset', 'none')}")
    elif isinstance(f.default, int):
        low, high = int_range(f.name)
        w = widgets.SpinBox(value=f.default, min=low, max=high)
    else:
        w = widgets.LineEdit(value=str(f.default))
    w.tooltip = _help(f)
    w.label = LABELS.get(f.name, f.name.replace("_", " "))
    return w


def config_form(names: tuple[str, ...] = FORM_FIELDS) -> dict[str, Any]:
    """name → magicgui widget for each named DehazeConfig field, in that order."""
    from usdehaze.ultrasound.dehaze_config import DehazeConfig

    by_name = DehazeConfig.settings()
    return {name: field_widget(by_name[name]) for name in names}


def is_path(name: str) -> bool:
    """Whether a DehazeConfig field takes a file or folder (it gets a picker)."""
    from usdehaze.ultrasound.dehaze_config import DehazeConfig

    return any(n == name and f.metadata.get("path") for n, f in DehazeConfig.settings().items())


def pick_path(parent: Any, name: str, current: str) -> str:
    """A dialog for a path field: a folder for :data:`FOLDERS`, else a ``.safetensors`` file
    (what ``usdehaze run --NAME`` takes); "" when cancelled."""
    from qtpy.QtWidgets import QFileDialog

    label = LABELS.get(name, name.replace("_", " "))
    if name in FOLDERS:
        return QFileDialog.getExistingDirectory(parent, label.capitalize(), current)
    path, _ = QFileDialog.getOpenFileName(
        parent, label.capitalize(), current, "Weights (*.safetensors)"
    )
    return path


def form_values(form: dict[str, Any]) -> dict[str, Any]:
    """The form's values as DehazeConfig takes them: an empty path is None (the default)."""
    return {
        name: (w.native.text().strip() or None) if is_path(name) else w.value
        for name, w in form.items()
    }
