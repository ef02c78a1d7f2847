"""Many scans over many processes: ``torchrun ... -m usdehaze run-many`` into one zarr store.

Layout: ``OUT.zarr`` (attrs: format, config, prior checksums, inputs, the highest ``ood_score``,
whether any scan's ``ood_warning`` fired, and ``nfe``: the network evaluations each frame got, as
the sampler counted them, also on every group) with one result group per
input, ``scans/000``, ``scans/001``..., each in the result layout of ``usdehaze run`` (so ``show``,
``gcnr`` and the napari reader open ``OUT.zarr/scans/000``) plus ``done``, one byte per frame.

One run per store: rank 0 holds ``.NAME.zarr.lock`` beside the store (``filelock``) for the
whole run, so a second ``run-many`` on the same store is refused in one line, and a store left
half-made is refused with a hint to start over (``--overwrite``). The output is checked before
any work (usdehaze.outputs): never a folder usdehaze did not write, never over an input.

Concurrency and resume: rank 0 creates the store, then every process takes every world-th frame
not yet done. A frame's images are written first (one chunk per frame, one writer per chunk) and
its ``done`` byte last, so a killed run leaves every frame either done and complete or not done;
rerunning the same command skips the done frames. Each frame's noise comes from seed + its index,
so the result does not depend on the number of processes or on where a run was resumed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.core import distributed as dist
from usdehaze.errors import UsageError
from usdehaze.outputs import MARKER, check_output, write_error
from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
from usdehaze.ultrasound.dehaze_config import RUNTIME_KEYS
from usdehaze.ultrasound.driver import FrameDriver, provenance, source_record
from usdehaze.ultrasound.methods import for_magnitude_data
from usdehaze.ultrasound.ood import OodCheck, check_run
from usdehaze.ultrasound.results import (
    IMAGE_KEYS,
    STD_KEYS,
    checksummed,
    init_result_group,
    load_result,
    set_attrs,
    store_lock,
)
from usdehaze.ultrasound.scan import read_frames

STORE_FORMAT = "usdehaze-batch/1"


def _identity(cfg: DehazeConfig, inputs: list[Path], frames: list[range]) -> dict[str, Any]:
    """What a resumed run must share with the run that made the store: everything but the
    runtime section (dehaze.RUNTIME_KEYS: device, batch, precision, compile, ...; each run's
    precision is in its ``runs`` entry), as flat keys (what stores have always recorded)."""
    c = {k: v for k, v in cfg.flat().items() if k not in RUNTIME_KEYS}
    return {
        "config": c,
        "inputs": [str(p.resolve()) for p in inputs],
        "frames": [[r.start, r.stop, r.step] for r in frames],
    }


def _create(
    out: Path, scans, frames: list[range], cfg: DehazeConfig, record: dict, ood: list[OodCheck]
) -> None:
    import zarr

    root = zarr.open_group(str(out), mode="w")
    keys = IMAGE_KEYS + (STD_KEYS if cfg.samples > 1 else ())
    for i, (scan, sel) in enumerate(zip(scans, frames)):
        g = root.require_group(f"scans/{i:03d}")
        init_result_group(
            g,
            len(sel),
            scan.shape,
            keys,
            (scan.x, scan.z, scan.grid, scan.axes),
            True,
            "run-many",
        )
        for name in ("done", "wreck"):  # wreck: the gross-failure check per frame (_flag_rows)
            g.create_array(
                name,
                shape=(len(sel),),
                chunks=(1,),
                dtype="uint8",
                fill_value=0,
                compressors=checksummed(),
            )
        set_attrs(
            g,
            {
                **source_record(scan.path, scan.layout, scan.key, sel, scan.magnitude_only),
                **{k: v for k, v in record.items() if k != "identity"},
                **ood[i].attrs(),
            },
        )
    scores = [c.score for c in ood if not np.isnan(c.score)]
    summary = {  # the store's own: the highest scan score, and whether any scan warned
        "ood_score": max(scores) if scores else float("nan"),
        "ood_warning": any(c.warning for c in ood),
    }
    set_attrs(  # last: a store without these attributes was never finished
        root,
        {
            **record,
            **summary,
            "format": STORE_FORMAT,
            MARKER: "run-many",
            "n_scans": len(scans),
            "runs": [],
        },
    )


def _damaged(out: Path, what: str) -> UsageError:
    return UsageError(
        f"{out}: an unfinished or damaged run-many store ({what}); "
        "rerun usdehaze run-many with --overwrite to start it over"
    )


def _open_store(out: Path, mode: str = "r"):
    """The store's root group and its scan groups, every part a run needs checked: a store
    left half-made (by a crash, or by an older usdehaze racing another run) is a UsageError."""
    import zarr

    try:
        root = zarr.open_group(str(out), mode=mode)
        attrs = dict(root.attrs)
    except Exception as exc:  # noqa: BLE001 - unreadable metadata: damaged, said in one line
        raise _damaged(
            out, f"cannot open it: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    if attrs.get("format") != STORE_FORMAT:
        raise UsageError(
            f"{out}: attribute 'format' is {attrs.get('format')!r}, expected '{STORE_FORMAT}' (not a run-many store; choose another -o)"
        )
    for key in ("identity", "n_scans"):
        if key not in attrs:
            raise _damaged(out, f"no '{key}' attribute")
    try:
        identity = json.loads(attrs["identity"])
        n = int(attrs["n_scans"])
    except (TypeError, ValueError):
        raise _damaged(out, "unreadable 'identity' or 'n_scans'") from None
    if not isinstance(identity, dict) or isinstance(attrs["n_scans"], bool) or n < 1:
        raise _damaged(out, "attribute 'identity' or 'n_scans' out of shape")
    _runs(out, attrs)
    groups = []
    for i in range(n):
        name = f"scans/{i:03d}"
        try:
            g = root[name]
        except Exception:  # noqa: BLE001
            raise _damaged(out, f"no group '{name}'") from None
        with load_result(out / name):  # every dataset and attribute a reader uses, checked
            pass
        missing = sorted({"done", *(f"{k}_db" for k in IMAGE_KEYS)} - set(g.array_keys()))
        if missing:
            raise _damaged(out, f"'{name}' has no {', '.join(missing)}")
        groups.append(g)
    return root, identity, groups


def _runs(out: Path, attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """The store's ``runs`` log: a JSON list of objects (one per run), else one line."""
    raw = attrs.get("runs", "[]")
    try:
        runs = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        runs = None
    if not (isinstance(runs, list) and all(isinstance(r, dict) for r in runs)):
        raise UsageError(
            f"{out}: attribute 'runs': {str(raw)[:60]!r}, expected a JSON list of runs "
            "(a damaged run-many store)"
        )
    return runs


def _check_store(out: Path, identity: dict) -> None:
    _, have, _ = _open_store(out)
    for key in ("inputs", "frames", "config"):
        if not isinstance(have, dict) or key not in have:
            raise _damaged(out, f"identity has no '{key}'")
        if key == "config" and isinstance(have[key], dict):  # older stores kept some runtime
            # settings, and lack the settings added since (rho): their defaults are what ran
            both = {**DehazeConfig().flat(), **have[key]}
            have = {**have, key: {k: v for k, v in both.items() if k not in RUNTIME_KEYS}}
        if have[key] != identity[key]:
            diff = (
                sorted(k for k in identity[key] if have[key].get(k) != identity[key][k])
                if key == "config"
                else key
            )
            raise UsageError(
                f"{out}: made with other {key} ({diff}); rerun with the same ones to resume, or --overwrite"
            )


def content_checksum(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, in name order)."""
    import hashlib

    from usdehaze.core.priors import sha256

    path = Path(path)
    if not path.is_dir():
        return sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}\0{sha256(f)}\0".encode())
    return h.hexdigest()


def content_checksums(inputs: list[Path]) -> list[str]:
    return [content_checksum(p) for p in inputs]


def _check_content(out: Path, priors: dict[str, str], inputs: list[Path], sums: list[str]):
    """A resume runs on the content the store was made from: the priors' (and student's)
    checksums and the inputs' (stores from before input checksums were recorded: priors only).
    A scan replaced under its name, or priors re-adapted in the same folder: one line."""
    import zarr

    attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    try:
        had = json.loads(attrs.get("prior_checksums", "{}"))
        had_inputs = json.loads(attrs.get("input_checksums", "null"))
    except (TypeError, ValueError):
        raise _damaged(out, "unreadable 'prior_checksums' or 'input_checksums'") from None
    if not isinstance(had, dict) or not (had_inputs is None or isinstance(had_inputs, list)):
        raise _damaged(out, "'prior_checksums' or 'input_checksums' out of shape")
    for role in sorted(set(had) | set(priors)):
        if had.get(role) != priors.get(role):
            raise UsageError(
                f"{out}: made with other {role} weights (sha256 {str(had.get(role))[:12]}… "
                f"recorded, {str(priors.get(role))[:12]}… now: re-adapted or replaced?); rerun "
                "with the weights it was made with to resume, or --overwrite to start over"
            )
    for p, was, now in zip(inputs, had_inputs or [], sums):
        if was != now:
            raise UsageError(
                f"{p}: changed since {out} was made from it (sha256 {str(was)[:12]}… recorded, "
                f"{now[:12]}… now); rerun with the same scan to resume, or --overwrite"
            )


def describe_store(out: Path) -> dict[str, Any] | None:
    """Summary of a run-many store (None when ``out`` is not one): scans, frames done, runs;
    a damaged or half-made store is a one-line UsageError."""
    import zarr

    try:
        root = zarr.open_group(str(out), mode="r")
        fmt = root.attrs.get("format")
    except Exception:
        return None
    if fmt != STORE_FORMAT:
        return None
    root, _, groups = _open_store(out)
    scans = []
    for i, g in enumerate(groups):
        done = np.asarray(g["done"][:])
        scans.append(
            {
                "group": f"scans/{i:03d}",
                "source": g.attrs.get("source"),
                "frames": int(done.size),
                "done": int(done.sum()),
            }
        )
    return {
        "file": str(out),
        "layout": STORE_FORMAT,
        "scans": scans,
        "frames_done": f"{sum(s['done'] for s in scans)}/{sum(s['frames'] for s in scans)}",
        "runs": _runs(out, dict(root.attrs)),
        "config": root.attrs.get("config"),
        "prior_checksums": root.attrs.get("prior_checksums"),
        "usdehaze_version": root.attrs.get("usdehaze_version"),
    }


def run_many(
    inputs: list[Path],
    out: Path,
    cfg: DehazeConfig,
    key: str | None = None,
    frames: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    strict: bool = False,
    fallback: str = "none",
) -> dict[str, Any]:
    """Dehaze the frames of every input into ``out`` (a .zarr store), sharded over torchrun
    processes; returns this run's figures (frames done here, skipped, seconds, frames/s).

    Every scan is checked once, before sampling (usdehaze.ultrasound.ood, recorded in its group
    as ``ood_score`` / ``ood_warning``): ``warn(message)`` (default ``log``) when one looks unlike
    the priors' training data, or with ``strict`` a UsageError before the store is touched.
    Every frame's result gets run's gross-failure check (usdehaze.ultrasound.wreck) in the
    process that made it, recorded per frame in its group (``wreck``) and, after the run, as
    ``wreck_*`` attributes; ``fallback`` "input" writes the input for a flagged frame; with
    ``strict``, as run, a flagged frame stops the run (a UsageError; the frames written before
    it are kept and a rerun resumes)."""
    from usdehaze.core.device import resolve_device
    from usdehaze.ultrasound.io import load_scan

    out = Path(out)
    if out.suffix != ".zarr":
        raise UsageError(f"{out}: run-many writes one zarr store; give -o NAME.zarr")
    if fallback not in ("none", "input"):  # "stop" is run's --strict, one process's
        raise UsageError(f"--fallback '{fallback}': expected none or input")
    check_output(out, inputs, folder=True)  # never over an input or a folder not usdehaze's
    rank, size = dist.world()
    cfg = replace(cfg, device=str(dist.local_device(resolve_device(cfg.device))))
    scans = [load_scan(p, key) for p in inputs]
    try:
        with contextlib.ExitStack() as stack:
            result = _run(
                scans,
                inputs,
                out,
                cfg,
                frames,
                overwrite,
                progress,
                log,
                warn,
                strict,
                stack,
                fallback,
            )
        dist.finish()
        return result
    finally:
        for s in scans:
            s.close()


def _run(scans, inputs, out, cfg, frames, overwrite, progress, log, warn, strict, stack, fallback):
    """run_many once the inputs are open (``stack`` holds rank 0's store lock)."""
    import zarr  # noqa: F401 - fail here, not midway, when zarr is missing

    rank, size = dist.world()
    sels, cfg = _selections(scans, inputs, frames, cfg, log)
    identity = _identity(cfg, inputs, sels)
    dehazer, ood = _prepare_store(
        scans, inputs, out, cfg, sels, identity, overwrite, warn or log, strict, stack
    )
    root, _, groups = _open_store(out, "r+")
    done = [np.asarray(g["done"][:]).astype(bool) for g in groups]
    todo = [(i, j) for i, d in enumerate(done) for j in np.flatnonzero(~d)]
    skipped = sum(int(d.sum()) for d in done)
    mine = todo[rank::size]
    t0 = time.perf_counter()
    # the frame driver of every path; the do-no-harm check is made by rank 0 at the end, over
    # every process's frames (_finish), so not here; the gross-failure check (and its fallback)
    # is per frame, made by the process that dehazed the frame, as run makes it
    say = (warn or log) if rank == 0 else None
    fallback = "stop" if strict else fallback  # as run: --strict stops at a wrecked frame
    drivers = [
        FrameDriver(dehazer, c, say, str(p), check=False, fallback=fallback, frame_checks=True)
        for c, p in zip(ood, inputs)
    ]
    n_here = _dehaze_share(
        scans, sels, groups, drivers, mine, cfg.batch, out, skipped, progress, say
    )
    _write_wrecks(groups, drivers, sels)
    figures = _figures(dehazer, drivers, n_here, time.perf_counter() - t0, skipped, size)
    if rank == 0:
        judged = dehazer.priors.get("tissue") is not None
        checks = [
            (str(p), c, judged, sel, dehazer.cfg.dynamic_range)
            for p, c, sel in zip(inputs, ood, sels)
        ]
        _finish(out, root, groups, figures, checks, warn or log, fallback)
        log(
            f"{out}: {figures['frames_all']} frame(s) dehazed by {size} process(es) in "
            f"{figures['seconds']:.1f} s ({figures['frames_per_s']:.2f} frames/s); "
            f"{skipped} already done, skipped"
        )
    return figures


def _selections(
    scans: list, inputs: list[Path], frames: str | None, cfg: DehazeConfig, log: Callable
) -> tuple[list[range], DehazeConfig]:
    """Each scan's frames; beamformed scans only; the config for magnitude-only inputs."""
    from usdehaze.ultrasound.scan import parse_frames

    sels = [parse_frames(frames, s.n_frames, p) for s, p in zip(scans, inputs)]
    cines = [p for s, p in zip(scans, inputs) if s.domain == "display"]
    if cines:  # their sector, overlays and display map go through run's B-mode path only
        raise UsageError(
            f"{cines[0]}: scan-converted B-mode: run-many takes beamformed scans; dehaze a cine "
            "with usdehaze run CINE -o OUT"
        )
    if any(s.magnitude_only for s in scans):
        cfg, note = for_magnitude_data(cfg)
        if note and dist.world()[0] == 0:
            log(f"some inputs are {note}")
    return sels, cfg


def _prepare_store(
    scans: list,
    inputs: list[Path],
    out: Path,
    cfg: DehazeConfig,
    sels: list[range],
    identity: dict[str, Any],
    overwrite: bool,
    say: Callable[[str], None],
    strict: bool,
    stack: contextlib.ExitStack,
) -> tuple[Dehazer, list[OodCheck]]:
    """Lock the store and check a resumed one (rank 0), check every scan (all ranks refuse
    together), create the store whole (rank 0); every rank then waits for it and checks it."""
    from usdehaze.atomic import atomic_path

    rank = dist.world()[0]
    if rank == 0:  # one run-many per store: a second one is refused before any work
        stack.enter_context(store_lock(out))
        if out.exists() and not overwrite:
            _check_store(out, identity)
    dehazer = Dehazer(cfg)
    sums = content_checksums(inputs) if rank == 0 else []
    if rank == 0 and out.exists() and not overwrite:  # same names, same content
        _check_content(out, dehazer.checksums, inputs, sums)
    # every rank checks: all refuse together
    ood = [
        check_run(s, sel, dehazer, strict, say if rank == 0 else None)
        for s, sel in zip(scans, sels)
    ]
    if rank == 0 and (overwrite or not out.exists()):
        # the provenance every path records (precision: "auto" as resolved on rank 0)
        record = {**provenance(dehazer), "identity": json.dumps(identity)}
        record["input_checksums"] = json.dumps(sums)
        try:  # the store appears whole or not at all; --overwrite swaps it in at the end
            with atomic_path(out) as tmp:
                _create(tmp, scans, sels, cfg, record, ood)
        except OSError as exc:
            raise write_error(out, exc) from exc
    dist.barrier()
    if rank != 0:
        _check_store(out, identity)
    return dehazer, ood


def _dehaze_share(
    scans: list,
    sels: list[range],
    groups: list,
    drivers: list[FrameDriver],
    mine: list[tuple[int, int]],
    batch: int,
    out: Path,
    skipped: int,
    progress: Callable[[int, int], None] | None,
    say: Callable[[str], None] | None,
) -> int:
    """Dehaze this process's frames (``mine``: (scan, frame) pairs) in batches; the count."""
    n_here = 0
    try:
        for i in range(len(scans)):
            rows = [j for (k, j) in mine if k == i]
            for b in range(0, len(rows), batch):
                chunk = rows[b : b + batch]
                src = [sels[i][j] for j in chunk]
                res = drivers[i].dehaze(src, read_frames(scans[i], src))
                if drivers[i].fallback != "none":  # checked before the frames are written
                    _flag_rows(groups[i], drivers[i], sels[i], src)
                _write_frames(groups[i], chunk, res, out, skipped + n_here)
                n_here += len(chunk)
                if progress is not None:
                    progress(n_here, len(mine))
    except KeyboardInterrupt:
        if say is not None:  # rank 0
            say(
                f"interrupted: {skipped + n_here} finished frame(s) kept in {out}; "
                "rerun the same command to resume"
            )
        raise
    return n_here


def _write_frames(g, rows: list[int], res: dict[str, np.ndarray], out: Path, before: int) -> None:
    """Write a batch's images into group ``g``, each frame's ``done`` byte last."""
    kept = 0
    try:
        for k, j in enumerate(rows):
            for name, v in res.items():
                g[f"{name}_db"][j] = v[k]
            g["done"][j] = 1  # last: marks the frame complete
            kept += 1
    except OSError as exc:
        raise UsageError(
            f"{out}: cannot write ({exc.strerror or exc}); the {before + kept} "
            "frame(s) finished before are kept, rerun the same command to resume"
        ) from exc


def _figures(
    dehazer: Dehazer,
    drivers: list[FrameDriver],
    n_here: int,
    seconds: float,
    skipped: int,
    size: int,
) -> dict[str, Any]:
    """This run's figures, summed (frames) and maximised (seconds, nfe) over the processes."""
    total_new, total_sec = dist.sum_all([float(n_here), seconds])
    wall = dist.max_all(seconds)
    nfe = max(d.nfe for d in drivers)  # network evaluations per frame, as the sampler counted
    nfe = int(dist.max_all(float(nfe)))  # a rank with no frames of its own counted none
    dist.barrier()
    return {
        "nfe": nfe,
        "precision": dehazer.precision(),  # a runtime setting: a resume may change it
        "frames": n_here,
        "frames_all": int(total_new),
        "skipped": skipped,
        "seconds": wall,
        "frames_per_s": total_new / wall if wall > 0 else 0.0,
        "processes": size,
    }


REPLACED_BIT = 1 << 7  # a flagged frame written as the input (fallback input)


def _flag_rows(g, driver: FrameDriver, sel: range, frames: list[int] | None = None) -> None:
    """The frames (source numbers; default all) this process dehazed that the gross-failure
    check flagged, into the group's ``wreck`` array (bit k: usdehaze.ultrasound.wreck.CHECKS[k]
    fired; REPLACED_BIT: the input was written in its place). A store made before the array
    existed has none."""
    from usdehaze.ultrasound.wreck import CHECKS

    if "wreck" not in g:
        return
    row = {f: j for j, f in enumerate(sel)}
    want = None if frames is None else {int(f) for f in frames}
    for f in driver.wreck.frames:
        if f.flagged and (want is None or f.frame in want):
            code = sum(1 << k for k, c in enumerate(CHECKS) if c in f.reasons)
            g["wreck"][row[f.frame]] = code | (REPLACED_BIT if f.frame in driver.replaced else 0)


def _write_wrecks(groups: list, drivers: list[FrameDriver], sels: list[range]) -> None:
    """Each process, after its share: every flagged frame it dehazed (_flag_rows), once the
    checks made beside the frames (fallback none) are done."""
    for g, d, sel in zip(groups, drivers, sels):
        d.attrs()  # waits for the checks made beside the frames
        _flag_rows(g, d, sel)


def _wreck_attrs(g, done: np.ndarray, frames: range, judged: bool, fallback: str):
    """A scan's gross-failure record from its ``wreck`` array (its done frames): the attributes
    run writes that a per-frame flag carries, and the WreckCheck whose message run says."""
    from usdehaze.ultrasound.wreck import CHECKS, FrameWreck, WreckCheck

    codes = np.asarray(g["wreck"][:]) if "wreck" in g else np.zeros(len(done), np.uint8)
    nan = float("nan")
    w = WreckCheck()
    replaced = []
    for j in np.flatnonzero(done):
        c = int(codes[j])
        reasons = tuple(k for b, k in enumerate(CHECKS) if c & (1 << b))
        w.frames.append(FrameWreck(int(frames[j]), nan, nan, nan, nan, nan, reasons))
        if c & REPLACED_BIT:
            replaced.append(int(frames[j]))
    found = {
        "wreck_warning": bool(judged and w.warning),
        "wreck_frames": [f.frame for f in w.frames],
        "wreck_flagged_frames": w.flagged,
        "wreck_reasons": {str(f.frame): list(f.reasons) for f in w.frames if f.flagged},
        "fallback": fallback,
        "fallback_frames": replaced,
    }
    return found, w


def _finish(
    out: Path,
    root,
    groups,
    figures: dict,
    checks: list,
    warn: Callable[[str], None],
    fallback: str = "none",
) -> None:
    """Rank 0, after every process is done: frame counts, completeness, each scan's do-no-harm
    check over all its finished frames (usdehaze.ultrasound.harm; ``checks``: (input, its
    OodCheck, whether the method has priors to judge, its frames, the dynamic range) per scan),
    the blank frames among them (input all at -DR: all zeros), the gross-failure flags its
    processes recorded per frame (_write_wrecks) and the run log. Every frame is read (a
    damaged one is one line) before any attribute is written."""
    from usdehaze.ultrasound.driver import harm_lines, result_check_attrs
    from usdehaze.ultrasound.harm import HarmCheck
    from usdehaze.ultrasound.result_check import read_frames

    any_warning = False
    found_all = []
    for i, (g, (name, ood, judged, frames, dr)) in enumerate(zip(groups, checks)):
        where = out / f"scans/{i:03d}"
        done = np.asarray(g["done"][:]).astype(bool)
        harm = HarmCheck()
        blank = []
        for j in np.flatnonzero(done):
            inp = read_frames(where, "input", g["input_db"], j, j + 1)
            harm.add([int(frames[j])], inp, read_frames(where, "tissue", g["tissue_db"], j, j + 1))
            if np.max(inp) <= -dr:  # an all-zero frame, dehazed as a blank frame
                blank.append(int(frames[j]))
        found = result_check_attrs(harm, ood, judged)
        wreck, flagged = _wreck_attrs(g, done, frames, judged, fallback)
        found.update(wreck)
        if blank:
            found["blank_frames"] = blank
        for line in harm_lines(harm, found, name):  # run's wording (FrameDriver.finish)
            warn(line)
        if wreck["wreck_warning"]:
            warn(flagged.message(name))
        any_warning |= found["ood_warning"]
        n = int(done.sum())
        found_all.append({**found, "frames_done": n, "complete": n == done.shape[0]})
    for g, found in zip(groups, found_all):
        set_attrs(g, found)
    set_attrs(root, {"ood_warning": any_warning})
    if figures["nfe"] or "nfe" not in root.attrs:  # a resume with nothing left to do keeps it
        for node in (root, *groups):
            set_attrs(node, {"nfe": figures["nfe"]})
    runs = _runs(out, dict(root.attrs))
    runs.append({**figures, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    set_attrs(root, {"runs": runs})
