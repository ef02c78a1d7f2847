"""Device adaptation: fine-tune the tissue and haze priors on a lab's own scans (``usdehaze adapt``).

Material, encoded exactly as the iq model encodes frames for the sampler (μ-law I/Q scaled by a
frame's max(|I|, |Q|), :func:`usdehaze.ultrasound.logcomp.iq_to_mulaw`):

- tissue-only scans (good acoustic windows, phantoms): each frame by its own reference, which is
  what a hazy frame's reference is too (tissue sets the peak);
- haze-only scans: there is no tissue to set the scale, and under a hazy frame's peak the haze
  peaks some dB lower (−16 to −2 dB in the simulated training corpus), so each frame is encoded
  at :data:`HAZE_ONLY_PEAKS_DB` below full scale;
- hazy scans with ``--haze-roi``: the hazy frame by its own reference, as the sampler sees it;
  the *target* regions of the ROI pairs (cavities, by the gCNR convention; backgrounds are
  tissue) mark the haze-only pixels. Patches are centred on those pixels and the DSM loss
  counts only them (the rest of the patch is context), so regions far smaller than a 64×64
  patch still train.

Both priors are fine-tuned from the shipped ones (or a folder of priors) by the core
:class:`~usdehaze.core.training.Trainer`, the time budget split evenly. The output folder holds
``tissue_iq`` and ``haze_iq`` (safetensors + JSON with provenance), ``adapt.json`` (what this
folder was adapted from) and ``checkpoints/`` (to resume). Priors are written only when both
finished, each pair renamed with Ctrl-C held, so an interrupted run leaves the previous ones.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.io.registry import suffixes
from usdehaze.ultrasound.logcomp import IQ_MULAW, iq_reference, iq_to_mulaw

ROLES = ("tissue", "haze")
MANIFEST = "adapt.json"
MANIFEST_FORMAT = "usdehaze-adapt/1"
CHECKPOINTS = "checkpoints"
PRIOR_SOURCE = "usdehaze adapt"  # the 'data.source' of every prior adapt writes
SCAN_SUFFIXES = suffixes()  # what the registered readers read (usdehaze.ultrasound.io)
# a haze-only frame's peak under a hazy frame's: the 75th, 50th, 25th and 5th percentiles of the
# haze peak under the hazy peak over the shipped priors' training corpus (runs/corpus/train)
HAZE_ONLY_PEAKS_DB = (0.0, -3.0, -9.0, -16.0)
MIN_SIDE = 16  # smallest frame side (and patch) adapt trains on
MIN_REGION_PIXELS = 64  # per ROI target on one frame (as usdehaze gcnr asks of regions)
MIN_TRAIN_PIXELS = 32 * 32  # per prior, over all frames: one small patch's worth at least


@dataclass
class AdaptSettings:
    """How to fine-tune; everything but ``minutes``, ``steps`` and ``device`` must match to resume."""

    minutes: float | None = 20.0  # training time of both priors together (None: --steps only)
    steps: int | None = None  # steps per prior (None: until the time budget is spent)
    device: str = "auto"
    seed: int = 0
    batch: int = 16
    lr: float = 2e-4
    ema: float = 0.995
    warmup: int = 20
    patch: int = 64
    max_frames: int = 64  # frames read per file, evenly spaced
    checkpoint_every: int = 50

    def validate(self) -> AdaptSettings:
        """One line per bad value (the CLI's options)."""
        if self.minutes is None and self.steps is None:
            raise UsageError("adapt: give --minutes or --steps (how long to train)")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise UsageError(f"--minutes {self.minutes}: expected a positive number")
        if self.steps is not None and self.steps < 1:
            raise UsageError(f"--steps {self.steps}: expected at least 1")
        for name in ("batch", "patch", "max_frames", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"adapt: {name} {getattr(self, name)}: expected at least 1")
        return self

    def fingerprint(self) -> dict[str, Any]:
        """The settings a checkpoint depends on (not how long or where it runs)."""
        d = asdict(self)
        for k in ("minutes", "steps", "device", "checkpoint_every"):
            d.pop(k)
        return d


@dataclass
class Material:
    """One prior's training material: μ-law I/Q arrays (N, 2, z, x), masks, and their sources."""

    role: str
    arrays: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray | None] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # said on stderr before training

    @property
    def pixels(self) -> int:
        """Pixels the loss sees over all frames (masked ones only where a mask is given)."""
        return int(
            sum(
                a.shape[0] * (a.shape[2] * a.shape[3] if m is None else int(m.sum()))
                for a, m in zip(self.arrays, self.masks)
            )
        )

    def describe(self) -> str:
        """One line for the log: files, frames, pixels."""
        frames = sum(len(f["frames"]) for f in self.files)
        return f"{self.role}: {len(self.files)} file(s), {frames} frame(s), {self.pixels} pixels"


@dataclass
class AdaptResult:
    """What an adapt run did: the priors' paths, steps and training time per prior."""

    out: Path
    priors: dict[str, Path]
    steps: dict[str, int]
    seconds: dict[str, float]
    steps_this_run: dict[str, int]
    written: bool
    student: Path | None = None  # the refreshed fast dehazer (adapt --student)


# -- inputs -------------------------------------------------------------------------------------
def _is_zarr_store(path: Path) -> bool:
    """Whether a folder is one zarr scan (read as a file), not a folder of scans."""
    return path.suffix == ".zarr" or any(
        (path / n).exists() for n in (".zgroup", ".zarray", "zarr.json")
    )


def _scan_files(folder: Path, above: tuple[Path, ...] = (), seen: set | None = None) -> list[Path]:
    """Scan files under a folder (recursively; a zarr store counts as one file). Symbolic links
    are followed once: a folder reached twice is read once, and a link back to a folder above
    it (a cycle, which made this walk never end) is one line naming it."""
    seen = set() if seen is None else seen
    real = folder.resolve()
    if real in above:
        raise UsageError(
            f"{folder}: a symbolic link back to {real} (a cycle); remove it or name the "
            "scans inside instead"
        )
    if real in seen:
        return []
    seen.add(real)
    found: list[Path] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            found += [p] if _is_zarr_store(p) else _scan_files(p, (*above, real), seen)
        elif p.suffix.lower() in SCAN_SUFFIXES:
            found.append(p)
    return found


def expand_inputs(specs: Sequence[str | Path], option: str) -> list[Path]:
    """Files, folders (scan files inside, recursively) and glob patterns → scan paths, in order,
    each once; a spec that names nothing is an error naming it."""
    out: list[Path] = []
    for spec in specs:
        spec = str(spec)
        if any(c in spec for c in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(spec, recursive=True))]
            if not matches:
                raise UsageError(f"{spec}: {option} pattern matches no file")
        else:
            matches = [Path(spec)]
            if not matches[0].exists():
                raise UsageError(f"{spec}: {option}: no such file or folder")
        for m in matches:
            if m.is_dir() and not _is_zarr_store(m):
                files = _scan_files(m)
                if not files:
                    raise UsageError(
                        f"{m}: {option}: folder holds no scan files ({', '.join(SCAN_SUFFIXES)})"
                    )
            else:
                files = [m]
            out += [f for f in files if f.resolve() not in {o.resolve() for o in out}]
    return out


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder store (every file's relative path and content)."""
    from usdehaze.core.priors import sha256

    if path.is_file():
        return sha256(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode() + b"\0" + bytes.fromhex(sha256(p)))
    return h.hexdigest()


def _open(path: Path, option: str):
    """A scan with complex IQ frames of at least MIN_SIDE pixels a side."""
    from usdehaze.ultrasound.io import load_scan

    try:
        scan = load_scan(path)
    except UsageError as exc:  # the readers' hint names run's --key, which adapt does not have
        if "--key" not in str(exc):
            raise
        raise UsageError(
            str(exc).replace(
                "pick one with --key",
                f"{option} reads files with one IQ dataset: copy the one to train on into its own file",
            )
        ) from None
    if scan.magnitude_only:
        scan.close()
        raise UsageError(
            f"{path}: {option}: magnitude-only data (no complex I/Q); adapt trains the iq model's "
            "I/Q priors and needs beamformed IQ"
        )
    if min(scan.shape) < MIN_SIDE:
        scan.close()
        raise UsageError(
            f"{path}: {option}: frames of {scan.shape[0]}x{scan.shape[1]} pixels; adapt needs at "
            f"least {MIN_SIDE}x{MIN_SIDE}"
        )
    return scan


def _frames(scan, max_frames: int) -> tuple[list[int], np.ndarray]:
    """Up to ``max_frames`` evenly spaced frames, all-zero ones left out: (indices, IQ)."""
    from usdehaze.ultrasound.scan import blank_frames

    n = scan.n_frames
    pick = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    kept, blocks = [], []
    for idx, iq in scan.batches(range(n) if len(pick) == n else pick.tolist(), 16):
        keep = ~blank_frames(iq)
        kept += [i for i, k in zip(idx, keep) if k]
        blocks.append(iq[keep])
    if not kept:
        raise UsageError(f"{scan.path}: every frame is all zeros; nothing to adapt to")
    return kept, np.concatenate(blocks)


def _record(path: Path, scan, kind: str, frames: list[int]) -> dict[str, Any]:
    """A source file's provenance entry: where, which content (sha256), what was used."""
    return {
        "path": str(path.resolve()),
        "sha256": file_sha256(path),
        "kind": kind,
        "layout": scan.layout,
        "key": scan.key,
        "shape": list(scan.shape),
        "probe": scan.probe,
        "frames": frames,
    }


def _iq_model() -> Any:
    """The iq data model, whose encoding (``prior_input``: the sampler's y) the material gets."""
    from usdehaze.ultrasound.dehaze_config import DehazeConfig
    from usdehaze.ultrasound.models import data_model

    return data_model("iq")(DehazeConfig())


def tissue_material(paths: Sequence[Path], max_frames: int = 64) -> Material:
    """Tissue-only scans → μ-law I/Q by each frame's own reference."""
    mat = Material("tissue")
    for path in paths:
        with _open(path, "--tissue") as scan:
            idx, iq = _frames(scan, max_frames)
            mat.arrays.append(_iq_model().prior_input(iq))
            mat.masks.append(None)
            mat.files.append(_record(path, scan, "tissue-only", idx))
    return mat


def haze_material(
    paths: Sequence[Path], roi_path: Path | None = None, max_frames: int = 64
) -> Material:
    """Haze material: haze-only scans at :data:`HAZE_ONLY_PEAKS_DB`, or (with ``roi_path``)
    hazy scans by their own reference with the ROI's target regions as the mask."""
    from usdehaze.ultrasound.roi import load_roi

    roi = load_roi(roi_path) if roi_path is not None else None
    mat = Material("haze")
    for path in paths:
        with _open(path, "--haze") as scan:
            idx, iq = _frames(scan, max_frames)
            ref = iq_reference(iq)
            if roi is None:
                if (why := _looks_hazy(Path(path), scan)) is not None:
                    mat.warnings.append(
                        f"{path}: --haze without --haze-roi takes every pixel as haze only, but "
                        f"{why}; if it holds tissue, give --haze-roi with its cavities "
                        "(docs/adapt.md)"
                    )
                levels = 10 ** (-np.asarray(HAZE_ONLY_PEAKS_DB, np.float32) / 20)
                mat.arrays.append(np.concatenate([iq_to_mulaw(iq, ref * g) for g in levels]))
                mat.masks.append(None)
                rec = _record(path, scan, "haze-only", idx)
                rec["peaks_db"] = list(HAZE_ONLY_PEAKS_DB)
            else:
                mat.arrays.append(_iq_model().prior_input(iq))
                mask, counts = _roi_mask(roi, scan)
                mat.masks.append(mask)
                rec = _record(path, scan, "hazy, ROI targets", idx)
                rec["region_pixels"] = counts
            mat.files.append(rec)
    return mat


def _looks_hazy(path: Path, scan) -> str | None:
    """Why a --haze file given without --haze-roi looks like a hazy scan with tissue in it
    rather than haze-only material (None: no sign). Content alone cannot tell them apart
    reliably; these are the files' own signs: a ground-truth tissue stored beside the data
    (usdehaze simulate, the corpus) or a region file beside it (as simulate writes one)."""
    if "extras: tissue" in getattr(scan, "datasets", []):
        return "it stores a ground-truth tissue beside its data (a simulated hazy scan)"
    roi = path.with_suffix(".roi.json")
    if roi.is_file():
        return f"{roi.name} lies beside it (regions are drawn on hazy scans with tissue)"
    return None


def _roi_mask(roi, scan) -> tuple[np.ndarray, dict[str, int]]:
    """The union of the ROI's target regions on a scan's grid; each must hold enough pixels."""
    from usdehaze.ultrasound.roi import rasterise

    mask = np.zeros(scan.shape, bool)
    counts = {}
    for pair in roi.pairs:
        m = rasterise(pair.target, scan.x, scan.z, roi.units)
        n = int(m.sum())
        if n < MIN_REGION_PIXELS:
            if roi.units == "mm":
                x0, x1, z0, z1 = scan.extent_mm
                span = f"the scan spans x {x0:.1f}..{x1:.1f} mm, z {z0:.1f}..{z1:.1f} mm"
            else:
                span = f"the scan has {scan.shape[1]} columns and {scan.shape[0]} rows"
            where = "lies outside" if n == 0 else f"covers only {n} pixels of"
            raise UsageError(
                f"{roi.source}: pair '{pair.name}': target region {where} {scan.path} "
                f"(need at least {MIN_REGION_PIXELS} pixels; {span})"
            )
        mask |= m
        counts[pair.name] = n
    return mask, counts


def _check_enough(mat: Material, option: str) -> None:
    """Refuse a prior without material or with too few pixels, before any training."""
    if not mat.files:
        what = (
            "tissue-only scans (good acoustic windows, phantoms)"
            if mat.role == "tissue"
            else "haze-only scans, or hazy scans with --haze-roi"
        )
        raise UsageError(f"adapt: no {mat.role} material: give {option} FILE ({what})")
    if mat.pixels < MIN_TRAIN_PIXELS:
        first = mat.files[0]["path"]
        more = f" and {len(mat.files) - 1} more" if len(mat.files) > 1 else ""
        raise UsageError(
            f"{first}{more}: {option}: only {mat.pixels} usable {mat.role} pixels "
            f"(need at least {MIN_TRAIN_PIXELS}: more frames, files or larger regions)"
        )


# -- priors -------------------------------------------------------------------------------------
def base_priors(folder: Path | None = None) -> dict[str, Any]:
    """The priors to start from: the shipped iq ones, or a folder's (``--from``)."""
    from usdehaze.core.priors import load_prior
    from usdehaze.ultrasound.dehaze import DehazeConfig
    from usdehaze.ultrasound.prior_files import check_prior_mu, prior_paths

    cfg = replace(
        DehazeConfig(), method="joint", model="iq", priors=str(folder) if folder else None
    )
    out = {}
    for role, path in zip(ROLES, prior_paths(cfg, "--from")):
        prior = load_prior(path)
        got = prior.meta.get("normalisation", {}).get("domain")
        if got != IQ_MULAW:
            raise UsageError(
                f"{path}: key 'normalisation.domain': base prior trained on '{got}' data; adapt "
                f"fine-tunes {IQ_MULAW} (μ-law I/Q) priors"
            )
        check_prior_mu(prior.meta)
        out[role] = prior
    return out


def _foreign(weights: Path) -> Path | None:
    """The file of a prior pair that adapt did not write (its JSON must say adapt wrote it and
    the weights must fit its checksum), or None when both are adapt's or absent."""
    from usdehaze.core.priors import sha256

    cfg_path = weights.with_suffix(".json")
    if not cfg_path.exists():
        return weights if weights.exists() else None
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError, RecursionError):  # unreadable, not JSON, nested too deeply
        return cfg_path
    if not isinstance(cfg, dict) or (cfg.get("data") or {}).get("source") != PRIOR_SOURCE:
        return cfg_path
    if weights.exists() and sha256(weights) != cfg.get("sha256"):
        return weights
    return None


# -- the output folder --------------------------------------------------------------------------
def prior_files(out: Path) -> dict[str, Path]:
    """Where the adapted priors go: the names ``--priors`` looks for (iq model)."""
    from usdehaze.ultrasound.models import data_model

    return {role: out / name for role, name in zip(ROLES, data_model("iq").prior_names())}


def read_manifest(out: Path) -> dict[str, Any] | None:
    """``out/adapt.json`` when ``out`` is a folder adapt wrote, None when it is new or empty;
    a folder of anything else is an error (adapt never writes among other files)."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise UsageError(f"{out}: -o: not a folder (expected a new or empty folder for the priors)")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return None
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError):  # unreadable, not JSON, nested too deeply
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise UsageError(
            f"{out}: -o: folder holds files usdehaze adapt did not write ({shown}); "
            "give a new or empty folder"
        )
    for path in prior_files(out).values():
        other = _foreign(path)
        if other is not None:
            raise UsageError(
                f"{other}: not written by usdehaze adapt; it will not be overwritten "
                "(move it away or choose another -o)"
            )
    ck = out / CHECKPOINTS
    if ck.exists() and not ck.is_dir():
        raise UsageError(f"{ck}: not a folder; adapt keeps its checkpoints there")
    return manifest


def _check_writable(out: Path) -> None:
    """The folder (or the nearest existing folder above it) must take new files."""
    import os

    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{out}: -o: cannot create the folder ({probe} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{out}: -o: not writable (no permission to write in {probe})")
    try:  # permissions say yes; the file system may still say no (read-only, /proc, root)
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise UsageError(f"{out}: -o: not writable ({exc.strerror or exc} in {probe})") from None


def _check_not_inputs(out: Path, tissue, haze, haze_roi, base) -> None:
    """No input may be ``out`` or lie inside it: --restart deletes ``out/checkpoints``."""
    from usdehaze.outputs import check_inputs

    inputs = [*expand_inputs(tissue, "--tissue"), *expand_inputs(haze, "--haze")]
    inputs += [Path(p) for p in (haze_roi, base) if p is not None]
    check_inputs(out, inputs)


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write ``out/adapt.json`` atomically; it marks the folder as adapt's and says from what."""
    from usdehaze.atomic import atomic_path

    try:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / MANIFEST) as tmp:
            from usdehaze.jsonio import dumps

            tmp.write_text(dumps(manifest, indent=2))  # NaN/Infinity as null
    except OSError as exc:
        raise UsageError(f"{out}: -o: cannot write there ({exc.strerror or exc})") from None


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The first part of two fingerprints that differs, for the message."""
    for key in new:
        if old.get(key) != new.get(key):
            return {
                "tissue": "other --tissue files",
                "haze": "other --haze files",
                "haze_roi": "another --haze-roi",
                "base": "other base priors (--from)",
                "settings": "other settings (--seed)",
            }.get(key, key)
    return "another adaptation"


# -- the run ------------------------------------------------------------------------------------
def _trainer(role: str, mat: Material, base, out: Path, s: AdaptSettings, device, progress: bool):
    """The core Trainer for one prior: the base prior's network and SDE, the material's patches."""
    from usdehaze.core.data import MaskedPatchSampler
    from usdehaze.core.training import TrainConfig, Trainer

    sampler = MaskedPatchSampler(mat.arrays, mat.masks, s.patch, flips=True)
    if base.meta["network"].get("channels") != sampler.channels:
        raise UsageError(
            f"{base.meta['path']}: base prior has {base.meta['network'].get('channels')} "
            "channels; adapt trains I/Q (2-channel) priors"
        )
    cfg = TrainConfig(
        data={"patch": sampler.patch, "flips": True},
        network=dict(base.meta["network"]),
        sde=dict(base.meta["sde"]),
        batch=s.batch,
        lr=s.lr,
        ema=s.ema,
        warmup=s.warmup,
        checkpoint_every=s.checkpoint_every,
        log_every=10,
        seed=s.seed + ROLES.index(role),
        out=str(out / CHECKPOINTS / role),
    )
    return Trainer(cfg, device, progress, sampler=sampler)


def adapt(
    tissue: Sequence[str | Path],
    haze: Sequence[str | Path],
    out: str | Path,
    settings: AdaptSettings | None = None,
    haze_roi: str | Path | None = None,
    base: str | Path | None = None,
    restart: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    student: Any = None,
    warn: Callable[[str], None] | None = None,
) -> AdaptResult:
    """Fine-tune the tissue and haze priors on ``tissue`` and ``haze`` material into ``out``.

    Rerunning with the same material and settings resumes from ``out/checkpoints`` (a larger
    ``minutes`` or ``steps`` trains on); other material needs ``restart``. Ctrl-C saves the
    checkpoint and raises KeyboardInterrupt with the previous priors in ``out`` untouched.
    ``student``: a :class:`usdehaze.ultrasound.adapt_student.StudentRefresh` to refresh the fast
    dehazer for the adapted priors afterwards (usdehaze.ultrasound.adapt_student). ``warn``:
    material that looks wrong for its role (hazy scans given as haze-only; default ``log``).
    """
    from usdehaze.core.device import resolve_device

    s = (settings or AdaptSettings()).validate()
    out = Path(out)
    if base is not None and Path(base).resolve() == out.resolve():
        raise UsageError(f"{out}: --from and -o are the same folder; adapt into another folder")
    _check_writable(out)
    _check_not_inputs(out, tissue, haze, haze_roi, base)
    manifest = read_manifest(out)
    device = resolve_device(s.device)
    base_student = _base_student(student, base)
    bases = base_priors(Path(base) if base is not None else None)
    roi_path = Path(haze_roi) if haze_roi is not None else None
    mats = _materials(tissue, haze, roi_path, s.max_frames, log, warn or log)
    fingerprint = {
        "tissue": [f["sha256"] for f in mats["tissue"].files],
        "haze": [f["sha256"] for f in mats["haze"].files],
        "haze_roi": file_sha256(roi_path) if roi_path else None,
        "base": {role: bases[role].checksum for role in ROLES},
        "settings": s.fingerprint(),
    }
    manifest = _start_manifest(out, manifest, fingerprint, restart)

    budget = s.minutes * 60 / len(ROLES) if s.minutes is not None else None
    trainers, ran = _train(mats, bases, out, s, device, progress, budget, log)
    files = prior_files(out)
    have = all(p.exists() and _foreign(p) is None for p in files.values())
    written = any(ran.values()) or not have or manifest.get("priors") is None
    if written:
        run = _Run(mats, bases, s, device, budget, roi_path, fingerprint["haze_roi"])
        _write_priors(out, manifest, trainers, files, run)
    refreshed = None
    if student is not None and (written or not (out / "student_iq.safetensors").is_file()):
        from usdehaze.ultrasound.adapt_student import refresh_student

        refreshed = refresh_student(out, mats, student, base_student, device, log)
    return AdaptResult(
        student=refreshed,
        out=out,
        priors=files,
        steps={role: trainers[role].step for role in ROLES},
        seconds={role: trainers[role].seconds for role in ROLES},
        steps_this_run=ran,
        written=written,
    )


def _base_student(student: Any, base: str | Path | None) -> Path | None:
    """The student a --student refresh starts from, checked before any work (None: no refresh)."""
    if student is None:
        return None
    from usdehaze.ultrasound.student import student_path

    student.validate()
    base_student = student_path(base, None)
    if not base_student.is_file():
        raise UsageError(
            f"{base_student}: adapt --student: no student to refresh (expected "
            "student_iq.safetensors in --from or in the package)"
        )
    return base_student


def _materials(
    tissue: Sequence[str | Path],
    haze: Sequence[str | Path],
    roi_path: Path | None,
    max_frames: int,
    log: Callable[[str], None],
    warn: Callable[[str], None],
) -> dict[str, Material]:
    """Both priors' material, each checked to be enough and described in the log."""
    mats = {
        "tissue": tissue_material(expand_inputs(tissue, "--tissue"), max_frames)
        if tissue
        else Material("tissue"),
        "haze": haze_material(expand_inputs(haze, "--haze"), roi_path, max_frames)
        if haze
        else Material("haze"),
    }
    for role, option in (("tissue", "--tissue"), ("haze", "--haze")):
        _check_enough(mats[role], option)
        log(mats[role].describe())
        for message in mats[role].warnings:
            warn(message)
    return mats


def _start_manifest(
    out: Path, manifest: dict[str, Any] | None, fingerprint: dict[str, Any], restart: bool
) -> dict[str, Any]:
    """Refuse other material without ``restart`` (or clear the checkpoints), write the manifest."""
    from usdehaze import __version__

    if manifest is not None and manifest.get("fingerprint") != fingerprint:
        if not restart:
            raise UsageError(
                f"{out}: adapted before from {_difference(manifest.get('fingerprint') or {}, fingerprint)}; "
                "rerun with --restart to start over there, or choose another -o"
            )
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    elif restart:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    manifest = {
        **(manifest or {}),
        "format": MANIFEST_FORMAT,
        "usdehaze_version": __version__,
        "fingerprint": fingerprint,
    }
    _write_manifest(out, manifest)
    return manifest


def _train(
    mats: dict[str, Material],
    bases: dict[str, Any],
    out: Path,
    s: AdaptSettings,
    device: Any,
    progress: bool,
    budget: float | None,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, int]]:
    """Each prior's Trainer, resumed from its checkpoint or started from the base; trained on."""
    trainers, ran = {}, {}
    for role in ROLES:
        tr = _trainer(role, mats[role], bases[role], out, s, device, progress)
        if tr.load_checkpoint():
            log(f"{role}: resuming at step {tr.step} ({tr.seconds / 60:.1f} min trained)")
        else:
            tr.init_weights(bases[role].net.state_dict())
        before = tr.step
        tr.fit(steps=s.steps, seconds=budget, desc=role)
        trainers[role] = tr
        ran[role] = tr.step - before
    return trainers, ran


@dataclass
class _Run:
    """What one adapt run's prior records say about where they came from."""

    mats: dict[str, Material]
    bases: dict[str, Any]
    settings: AdaptSettings
    device: Any
    budget: float | None  # seconds per prior
    roi_path: Path | None
    roi_sha256: str | None


def _export_meta(role: str, tr: Any, path: Path, run: _Run) -> dict[str, Any]:
    """The JSON record of one adapted prior: its material, its training and its base."""
    from usdehaze.core.networks import count_parameters

    b, mat, s, budget = run.bases[role], run.mats[role], run.settings, run.budget
    return {
        "path": str(path.with_suffix("")),
        "normalisation": b.meta.get("normalisation", {}),
        "data": {
            "source": PRIOR_SOURCE,
            "content": f"{role}-only",
            "domain": IQ_MULAW,
            "encoding": _ENCODING[role],
            "files": mat.files,
            "pixels": mat.pixels,
            **(
                {"haze_roi": {"path": str(run.roi_path.resolve()), "sha256": run.roi_sha256}}
                if role == "haze" and run.roi_path
                else {}
            ),
        },
        "training": {
            "minutes": round(tr.seconds / 60, 2),
            "budget_minutes": None if budget is None else round(budget / 60, 2),
            "steps_limit": s.steps,
            "warmup": s.warmup,
            "parameters": count_parameters(tr.net),
            "device": str(run.device),
            "base": {
                "path": b.meta.get("path"),
                "sha256": b.checksum,
                "steps": (b.meta.get("training") or {}).get("steps"),
            },
        },
    }


def _write_priors(
    out: Path,
    manifest: dict[str, Any],
    trainers: dict[str, Any],
    files: dict[str, Path],
    run: _Run,
) -> None:
    """Export both priors and record them in the manifest, with Ctrl-C held throughout."""
    from usdehaze.atomic import deferred_interrupts

    for role in ROLES:
        trainers[role].write_losses()
    records = {}
    with deferred_interrupts():  # both pairs, or neither: never one new and one old prior
        for role in ROLES:
            tr = trainers[role]
            tr.cfg.export = _export_meta(role, tr, files[role], run)
            tr.export(losses=False)
            records[role] = {
                "file": files[role].name,
                "sha256": json.loads(files[role].with_suffix(".json").read_text())["sha256"],
                "steps": tr.step,
                "minutes": round(tr.seconds / 60, 2),
            }
        manifest["priors"] = records
        _write_manifest(out, manifest)


_ENCODING = {
    "tissue": "mu-law I/Q (mu 255), each frame divided by its own max(|I|, |Q|)",
    "haze": "mu-law I/Q (mu 255): haze-only frames with their peak at peaks_db of full scale; "
    "hazy frames (ROI targets) divided by their own max(|I|, |Q|)",
}
