"""The fast dehazer's student: network, files, training and the ``fast`` method end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from usdehaze.core.student import (
    DistilConfig,
    Distiller,
    OnePassUNet,
    StudentNet,
    load_student,
    save_student,
)
from usdehaze.errors import UsageError
from usdehaze.ultrasound import student as us_student
from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer


def _iq(n=2, shape=(40, 24), seed=0):
    r = np.random.default_rng(seed)
    return (r.standard_normal((n, *shape)) + 1j * r.standard_normal((n, *shape))).astype(
        np.complex64
    )


@pytest.mark.parametrize("shape", [(32, 32), (37, 21), (5, 9)])
def test_untrained_student_returns_its_residual_channel_at_any_size(shape):
    net = OnePassUNet(StudentNet(3, 2, width=4, levels=3, residual=1)).eval()
    x = torch.randn(2, 3, *shape)
    y = net(x)
    assert y.shape == (2, 2, *shape)
    assert torch.equal(y, x[:, 1:2].expand(-1, 2, -1, -1))


def test_save_load_round_trip_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    net = OnePassUNet(StudentNet(3, 2, width=4, levels=2))
    torch.nn.init.normal_(net.head.weight)
    path = save_student(tmp_path / "s", net, {"teacher": {"checksums": {"tissue": "abc"}}})
    s = load_student(path)
    x = torch.randn(1, 3, 20, 12)
    assert torch.equal(s(x), net.eval()(x))
    assert s.meta["teacher"]["checksums"]["tissue"] == "abc"
    assert s.checksum == json.loads(path.with_suffix(".json").read_text())["checksum"]


def test_bad_student_files_are_one_line_errors(tmp_path):
    net = OnePassUNet(StudentNet(3, 2, width=4, levels=2))
    path = save_student(tmp_path / "s", net, {})
    meta = json.loads(path.with_suffix(".json").read_text())
    # weights changed after the JSON was written: the checksum no longer matches
    w = path.read_bytes()
    path.write_bytes(w[:-4] + b"\x00\x00\x80\x7f")
    with pytest.raises(UsageError, match="checksum|NaN"):
        load_student(path)
    path.write_bytes(w)
    for bad in (
        {**meta, "format": "other"},
        {**meta, "network": {**meta["network"], "width": 10**6}},
    ):
        path.with_suffix(".json").write_text(json.dumps(bad))
        with pytest.raises(UsageError) as e:
            load_student(path)
        assert str(path.with_suffix(".json")) in str(e.value) and "\n" not in str(e.value)
    # a pickle under the safetensors name is refused, and nothing in it runs
    path.with_suffix(".json").write_text(json.dumps(meta))
    marker = tmp_path / "ran"
    torch.save({"x": torch.zeros(1)}, path)  # a zip/pickle file, not safetensors
    with pytest.raises(UsageError, match="safetensors"):
        load_student(path)
    assert not marker.exists()


def test_fast_student_must_fit_the_representation_and_range(tmp_path):
    net = OnePassUNet(StudentNet(2, 2, width=4, levels=2))
    path = save_student(tmp_path / "s", net, {"dynamic_range": 60.0})
    with pytest.raises(UsageError, match="channels"):
        us_student.load(path, "cpu", 60.0)
    path = save_student(tmp_path / "t", OnePassUNet(StudentNet(3, 2, 4, 2)), {"dynamic_range": 50})
    with pytest.raises(UsageError, match="--dynamic-range 50"):
        us_student.load(path, "cpu", 60.0)


@pytest.mark.parametrize(
    "dr, runs", [(60, True), (60.0, True), (None, True), (50, False), (True, False), ("60", False)]
)
def test_auto_picks_a_student_only_where_it_would_load(tmp_path, dr, runs):
    """runs_at (what lets --method auto pick refine, from the JSON alone) and load (which
    refuses with the reason) judge a student's dynamic_range the same way."""
    meta = {} if dr is None else {"dynamic_range": dr}
    path = save_student(tmp_path / "s", OnePassUNet(StudentNet(3, 2, 4, 2)), meta)
    assert us_student.runs_at(path, 60.0) is runs
    if runs:
        assert us_student.load(path, "cpu", 60.0) is not None
    else:
        with pytest.raises(UsageError, match="dynamic_range"):
            us_student.load(path, "cpu", 60.0)


def test_distiller_learns_a_known_map_and_resumes_exactly(tmp_path):
    """Target: an affine map of the input; the error must fall 5x in 300 steps, and 20 steps
    in one go equal 10 steps, a restart from the checkpoint, and 10 more."""
    r = np.random.default_rng(0)
    xs = [r.standard_normal((1, 24, 24)).astype(np.float32) for _ in range(8)]
    ys = [0.5 * x - 0.3 for x in xs]
    cfg = DistilConfig(
        steps=300,
        batch=4,
        crop=16,
        lr=1e-2,
        checkpoint_every=100,
        network={"width": 8, "levels": 2},
    )
    d = Distiller(xs, ys, cfg, tmp_path / "a")
    x, y = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def error() -> float:
        with torch.no_grad():
            return float((d.net(x) - y).abs().mean())

    before = error()
    d.fit(log=None)
    assert error() < before / 5, (before, error())

    short = replace(cfg, steps=20, checkpoint_every=10)
    one = Distiller(xs, ys, short, tmp_path / "b")
    one.fit(log=None)
    two = Distiller(xs, ys, short, tmp_path / "c")
    two.fit(log=None, stop=lambda: two.step == 10)
    assert two.step == 10
    three = Distiller(xs, ys, short, tmp_path / "c")  # resumes at step 10
    assert three.step == 10
    three.fit(log=None)
    for k, v in one.net.state_dict().items():
        assert torch.equal(v, three.net.state_dict()[k]), k
    with pytest.raises(UsageError, match="other settings"):
        Distiller(xs, ys, replace(short, lr=5e-3), tmp_path / "c")


def test_fast_method_runs_one_pass(tiny_student, tiny_iq_priors):
    t, h = tiny_iq_priors
    cfg = DehazeConfig(
        method="fast",
        student=str(tiny_student),
        tissue_prior=str(t),
        haze_prior=str(h),
        device="cpu",
        precision="fp32",  # the plain network below (auto: bf16 on CPUs with AMX)
    )
    d = Dehazer(cfg)
    iq = _iq()
    out = d.dehaze_iq(iq)
    assert d.nfe == 1
    assert set(out) == {"input", "tissue", "haze"}
    s = load_student(tiny_student)
    _, x = us_student.encode(iq, 60.0)
    # each frame alone on one thread, as the method runs them (usdehaze.core.device.each_alone)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        y = torch.cat([s(torch.from_numpy(x[i : i + 1])) for i in range(len(x))])
    finally:
        torch.set_num_threads(threads)
    want = us_student.decode(y.numpy(), 60.0)
    np.testing.assert_array_equal(out["tissue"], want["tissue"])
    assert not np.array_equal(out["tissue"], out["input"])  # the random head changed something
    assert d.checksums["student"] == s.checksum


@pytest.mark.parametrize(
    "change, message",
    [({"samples": 2}, "uncertainty"), ({"model": "logsum"}, "students for the iq model")],
)
def test_fast_refuses_what_it_cannot_do(change, message):
    with pytest.raises(UsageError, match=message):
        DehazeConfig(method="fast", **change).validate()


def test_cli_run_fast_records_method_and_student(tmp_path, tiny_student, tiny_iq_priors):
    from usdehaze.ultrasound.simulate import demo_scan_path

    t, h = tiny_iq_priors
    out = tmp_path / "r.h5"
    cmd = [
        sys.executable, "-m", "usdehaze", "run", str(demo_scan_path()), "--frames", "0:2",
        "--method", "fast", "--student", str(tiny_student), "--tissue-prior", str(t),
        "--haze-prior", str(h), "-o", str(out), "-q",
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with h5py.File(out) as f:
        assert f.attrs["method"] == "fast"
        assert f.attrs["nfe"] == 1
        assert "student" in json.loads(f.attrs["prior_checksums"])
        assert json.loads(f.attrs["config"])["student"] == str(tiny_student)
        assert f["tissue_db"].shape[0] == 2


def test_a_crop_within_its_frame_is_scaled_as_the_frame(tiny_student, tiny_iq_priors):
    """dehaze_iq(crop, within=frame): the crop's input dB is the frame's input dB cut out (not
    re-referenced to the crop's own maximum), for the sampler and for the student."""
    t, h = tiny_iq_priors
    whole = _iq(1, (48, 40), seed=3)
    whole[0, 0, 0] *= 50  # the frame's peak lies outside the crop
    crop = whole[:, 8:40, 8:40]
    for method in ("joint", "fast"):
        cfg = DehazeConfig(
            method=method, student=str(tiny_student), tissue_prior=str(t), haze_prior=str(h),
            device="cpu", steps=2,
        )  # fmt: skip
        d = Dehazer(cfg)
        full = d.dehaze_iq(whole)["input"][:, 8:40, 8:40]
        np.testing.assert_allclose(d.dehaze_iq(crop, within=whole)["input"], full, atol=1e-5)
        assert not np.allclose(d.dehaze_iq(crop)["input"], full, atol=1)


def _fan(shape=(90, 120)) -> np.ndarray:
    """A sector-shaped imaged region (z, x): a 60° fan from the top centre."""
    z, x = np.indices(shape, dtype=float)
    rho, phi = np.hypot(z, x - shape[1] / 2), np.arctan2(x - shape[1] / 2, z)
    return (np.abs(phi) < np.radians(30)) & (rho < shape[0] - 2)


def _bmode_dehazer(student, priors, dr: float) -> Dehazer:
    cfg = DehazeConfig(
        method="fast",
        model="bmode",
        student=str(student),
        tissue_prior=str(priors[0]),
        device="cpu",
        dynamic_range=dr,
        precision="fp32",
    )  # fmt: skip  (fp32: these tests check the view and gain arithmetic to 1e-4)
    return Dehazer(cfg)


def test_context_view_is_the_mean_power_of_its_cells_in_grey_units():
    """A region of two constant levels: every cell inside reads its level's (dB + DR) / DR,
    cells mostly outside read 0 and are masked out; the view spans the region's bounding box."""
    inside = _fan((256, 256))
    db = np.full(inside.shape, -60.0, np.float32)
    db[inside] = -20.0
    db[inside & (np.indices(db.shape)[0] >= 128)] = -35.0  # deeper half 15 dB dimmer
    view, within = us_student.context_view(db, inside, 60.0, size=32)
    assert view.shape == within.shape == (1, 32, 32)
    top, deep = view[0, :12][within[0, :12] > 0], view[0, 20:][within[0, 20:] > 0]
    np.testing.assert_allclose(top, 40 / 60, atol=1e-4)
    np.testing.assert_allclose(deep, 25 / 60, atol=1e-4)
    assert np.all(view[within == 0] == 0) and 0.3 < within.mean() < 0.9
    assert within[0, 2:-2].any(1).all()  # the view spans the region's depth ...
    assert within[0, :, 0].any() and within[0, :, -1].any()  # ... and its width


def test_bmode_student_applies_a_smooth_darkening_gain_to_the_input_pixels(
    tiny_bmode_student, tiny_bmode_priors
):
    """One pass; tissue never brighter than the input, the input's pixels kept where the gain is
    0 (outside the imaged region), powers conserved (tissue + haze = input where haze is above
    the floor), and the gain smooth: the speckle (pixel-to-pixel change) is the input's."""
    d = _bmode_dehazer(tiny_bmode_student, tiny_bmode_priors, 60.0)
    inside = _fan()
    r = np.random.default_rng(0)
    speckle = 10 * np.log10(r.exponential(size=(2, *inside.shape)))  # fully developed speckle
    db = np.where(inside, np.clip(-25 + speckle, -59, 0), -60).astype(np.float32)
    out = d(db)
    assert d.nfe == 1 and set(out) == {"tissue", "haze"}
    tissue, haze = out["tissue"], out["haze"]
    gain = tissue - db
    assert gain.max() <= 1e-5 and gain.min() < -0.01  # the random head darkens somewhere
    np.testing.assert_array_equal(tissue[:, ~inside], db[:, ~inside])
    above = haze > -59.9
    power = 10 ** (tissue / 10) + 10 ** (haze / 10)
    np.testing.assert_allclose(power[above], (10 ** (db / 10))[above], rtol=1e-3)
    core = inside & np.roll(inside, 1, 0) & np.roll(inside, 1, 1)
    step = lambda a: np.abs(np.diff(a, axis=-1))[:, core[:, 1:]].mean()  # noqa: E731
    assert step(gain) < 0.05 * step(db)


def test_bmode_student_gain_scales_with_the_runs_dynamic_range(
    tiny_bmode_student, tiny_bmode_priors
):
    """The same grey levels read at 60 and at 45 dB give the same view, so the same gain in
    grey units (its scale is the run's own, unlike the iq student's)."""
    inside = _fan()
    grey = np.where(inside, np.random.default_rng(1).uniform(0.2, 0.9, inside.shape), 0)
    gains = []
    for dr in (60.0, 45.0):
        db = (grey * dr - dr)[None].astype(np.float32)
        gains.append(
            (_bmode_dehazer(tiny_bmode_student, tiny_bmode_priors, dr)(db)["tissue"] - db) / dr
        )
    assert np.abs(gains[0]).max() > 1e-3
    np.testing.assert_allclose(gains[0], gains[1], atol=1e-4)


def test_an_identity_bmode_student_changes_nothing(tmp_path, tiny_bmode_priors):
    """A student whose head is zero returns its view: gain 0, the tissue is the input and the
    haze is at the floor."""
    from usdehaze.core.student import OnePassUNet, StudentNet, save_student

    path = save_student(
        tmp_path / "student_bmode", OnePassUNet(StudentNet(1, 1, width=4, levels=2)),
        {"method": "fast", "model": "bmode"},
    )  # fmt: skip
    inside = _fan()
    db = np.where(inside, np.random.default_rng(2).uniform(-50, -5, inside.shape), -60)
    out = _bmode_dehazer(path, tiny_bmode_priors, 60.0)(db[None].astype(np.float32))
    np.testing.assert_allclose(out["tissue"][0], db, atol=1e-4)
    assert np.all(out["haze"] == -60)


def test_a_student_for_one_model_is_refused_by_the_other(tiny_student, tiny_bmode_student):
    with pytest.raises(UsageError, match="student for model 'iq'.*reads model 'bmode'"):
        us_student.load(tiny_student, "cpu", 60.0, "bmode")
    with pytest.raises(UsageError, match="student for model 'bmode'.*reads model 'iq'"):
        us_student.load(tiny_bmode_student, "cpu", 60.0, "iq")
    with pytest.raises(UsageError, match="students for iq and bmode only"):
        us_student.kind("logsum")


def test_fast_on_scan_converted_input_switches_to_the_bmode_student():
    from usdehaze.ultrasound.methods import for_scan

    class Cine:  # what for_scan reads of a scan
        domain, grid, magnitude_only = "display", "cartesian", True

    cfg, note = for_scan(DehazeConfig(method="fast"), Cine())
    assert cfg.model == "bmode" and "B-mode student" in note
    with pytest.raises(UsageError, match="B-mode student"):
        for_scan(DehazeConfig(method="fast", priors="somewhere"), Cine())


def test_upsampling_into_the_concatenation_is_the_plain_ops():
    """OnePassUNet's decoder input (issue 29): nearest 2× upsampling written straight into the
    concatenation gives exactly torch.cat([interpolate(y), skip]); with gradients, the same."""
    from usdehaze.core.student import _up_cat

    torch.manual_seed(0)
    for shape in [(2, 8, 6, 5), (1, 3, 1, 1), (3, 4, 16, 8)]:
        y = torch.randn(*shape)
        skip = torch.randn(shape[0], 5, 2 * shape[2], 2 * shape[3])
        plain = torch.cat([torch.nn.functional.interpolate(y, scale_factor=2), skip], dim=1)
        with torch.inference_mode():
            assert torch.equal(_up_cat(y, skip), plain)
        y.requires_grad_(True)
        out = _up_cat(y, skip)
        assert out.requires_grad and torch.equal(out.detach(), plain)
