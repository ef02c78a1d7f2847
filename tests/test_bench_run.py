"""``usdehaze bench run`` (issue 29): an end-to-end run split into stages by the driver's stage
timer, start-up apart. No timing asserts: which stages are there and how the time adds up."""

from __future__ import annotations

import contextlib

import pytest

from usdehaze.cli._app import run_app
from usdehaze.ultrasound import driver
from usdehaze.ultrasound.dehaze import DehazeConfig


@pytest.fixture
def scan_file(tmp_path):
    from usdehaze.ultrasound.io import write_scan
    from usdehaze.ultrasound.simulate import simulate_cardiac

    sim = simulate_cardiac(5, seed=0, shape=(48, 32))
    return write_scan(tmp_path / "s.h5", sim.hazy_iq, sim.x, sim.z, grid="polar", axes=sim.axes)


def _cfg(priors, student, **kw):
    t, h = priors
    return DehazeConfig(
        tissue_prior=str(t), haze_prior=str(h), model="iq", device="cpu", student=str(student), **kw
    )


def test_stage_timer_counts_each_stage_without_the_stages_inside(monkeypatch):
    clock = iter([0.0, 1.0, 3.0, 10.0])  # outer opens, inner opens, inner closes, outer closes
    monkeypatch.setattr(driver.time, "perf_counter", lambda: next(clock))
    t = driver.StageTimer()
    with driver.timing(t):
        with driver.stage("network"), driver.stage("encode"):
            pass
    assert t.seconds == {"encode": 2.0, "network": 8.0}  # 10 s in all, none counted twice


def test_stage_is_nothing_when_timing_is_off():
    assert driver.stage("network") is driver.stage("read")  # the one shared no-op
    assert isinstance(driver.stage("read"), contextlib.nullcontext)


def test_timed_counts_producing_items_to_its_stage(monkeypatch):
    clock = iter([0.0, 0.5, 1.0, 1.5, 2.0])
    monkeypatch.setattr(driver.time, "perf_counter", lambda: next(clock))
    t = driver.StageTimer()
    with driver.timing(t):
        assert list(driver.timed("read", [1, 2])) == [1, 2]
    assert t.seconds == {"read": 1.0}


@pytest.mark.parametrize("method", ["fast", "joint"])
def test_breakdown_of_a_run_adds_up(scan_file, tiny_iq_priors, tiny_student, method):
    from usdehaze.ultrasound.bench_run import run

    cfg = _cfg(tiny_iq_priors, tiny_student, method=method, steps=2, batch=2)
    r = run(scan_file, cfg)
    st = r["stages"]
    assert list(st) == [*driver.STAGES, "other"]
    assert r["frames"] == 5 and r["shape"] == (48, 32)
    assert sum(st.values()) == pytest.approx(r["seconds"], rel=1e-6, abs=1e-6)
    for name in ("read", "encode", "ood check", "network", "result checks", "write"):
        assert st[name] > 0, name  # each is measured on this run
    assert st["scan conversion"] == 0  # IQ input: no display view
    if method == "fast":
        assert st["decode"] > 0  # the student's decode, out of its network call
    assert r["load_s"] > 0 and r["seconds"] > 0
    assert r["frames_per_s"] == pytest.approx(5 / r["seconds"])
    assert r["vs_network"] == pytest.approx(r["seconds"] / st["network"])


def test_cli_prints_every_stage_and_the_totals(scan_file, tiny_iq_priors, tiny_student, capsys):
    t, h = tiny_iq_priors
    argv = ["bench", "run", str(scan_file), "--method", "fast", "--tissue-prior", str(t)]
    argv += ["--haze-prior", str(h), "--student", str(tiny_student), "--frames", "0:3"]
    assert run_app(argv) == 0
    out = capsys.readouterr().out
    for name in driver.STAGES:
        assert f"\n{name} " in out
    assert "start-up (not counted below)" in out and "loading" in out
    assert "3 frame(s) of 48x32" in out and "frames/s" in out and "end to end / network" in out


def test_cli_answers_a_missing_scan_in_one_line(tmp_path, capsys):
    assert run_app(["bench", "run", str(tmp_path / "nope.h5")]) == 2
    err = capsys.readouterr().err
    assert "nope.h5: no such file" in err and "Traceback" not in err


def test_read_ahead_gives_the_items_in_order_and_raises_the_readers_error():
    assert list(driver.read_ahead(iter(range(5)))) == [0, 1, 2, 3, 4]

    def broken():
        yield 1
        raise OSError("unreadable chunk")

    got = []
    with pytest.raises(OSError, match="unreadable chunk"):
        for item in driver.read_ahead(broken()):
            got.append(item)
    assert got == [1]


def test_closing_read_ahead_stops_the_reader_before_returning():
    import threading

    reads: list[int] = []
    started = threading.Event()

    closed = threading.Event()

    def source():
        try:
            for i in range(1000):
                started.set()
                reads.append(i)
                yield i
        finally:
            closed.set()

    ahead = driver.read_ahead(source())
    assert next(ahead) == 0
    started.wait(5)
    ahead.close()  # waits for the read in progress: nothing is read after this
    n = len(reads)
    assert closed.is_set()  # the source generator is closed too, before close() returns
    assert n <= 3  # the one taken and two ahead at most, not the whole source
    threading.Event().wait(0.2)
    assert len(reads) == n


def _datasets_and_attrs(path):
    import h5py
    import numpy as np

    with h5py.File(path) as f:
        data = {}
        f.visititems(lambda n, o: data.update({n: o[()]}) if isinstance(o, h5py.Dataset) else None)
        attrs = {k: np.asarray(v) for k, v in f.attrs.items() if not k.startswith("seconds")}
    return data, attrs


def test_a_run_read_ahead_writes_what_a_run_read_in_line_writes(
    scan_file, tiny_iq_priors, tiny_student, tmp_path, monkeypatch
):
    import numpy as np

    from usdehaze.ultrasound import dehaze
    from usdehaze.ultrasound.io import load_scan

    cfg = _cfg(tiny_iq_priors, tiny_student, method="fast", batch=2)  # 3 batches of 5 frames
    dehaze.run_dehaze(load_scan(scan_file), tmp_path / "ahead.h5", cfg)
    monkeypatch.setattr(dehaze, "read_ahead", iter)  # the batches read in line, as before
    dehaze.run_dehaze(load_scan(scan_file), tmp_path / "inline.h5", cfg)
    (da, aa), (di, ai) = (_datasets_and_attrs(tmp_path / n) for n in ("ahead.h5", "inline.h5"))
    assert sorted(da) == sorted(di) and "tissue" in " ".join(da)
    for name in da:
        assert np.array_equal(da[name], di[name], equal_nan=True), name
    assert sorted(aa) == sorted(ai)
    for key in aa:
        assert np.array_equal(aa[key], ai[key], equal_nan=aa[key].dtype.kind == "f"), key


def test_a_read_error_mid_run_reaches_the_caller(
    scan_file, tiny_iq_priors, tiny_student, tmp_path, monkeypatch
):
    from usdehaze.ultrasound import scan as scan_mod
    from usdehaze.ultrasound.dehaze import run_dehaze
    from usdehaze.ultrasound.io import load_scan

    real = scan_mod.read_frames
    asked: list[list[int]] = []

    def failing(scan, index):
        asked.append(list(index))
        if index[0] >= 2:  # the run's second batch (ood reads through its own import)
            raise OSError("unreadable chunk at frame 2")
        return real(scan, index)

    monkeypatch.setattr(scan_mod, "read_frames", failing)
    cfg = _cfg(tiny_iq_priors, tiny_student, method="fast", batch=2)
    with pytest.raises(OSError, match="unreadable chunk at frame 2"):
        run_dehaze(load_scan(scan_file), tmp_path / "r.h5", cfg)
    assert [2, 3] in asked and [4] not in asked  # nothing is read past the error


def _threads_named(name):
    import threading

    return [t for t in threading.enumerate() if t.name == name]


def test_jobs_beside_run_in_order_and_their_thread_ends_at_wait():
    jobs = driver._InOrder("test-in-order")
    done: list[int] = []
    for i in range(6):
        jobs.submit(lambda i=i: done.append(i))
    assert _threads_named("test-in-order")
    jobs.wait()
    assert done == list(range(6))
    for t in _threads_named("test-in-order"):
        t.join(5)
    assert not _threads_named("test-in-order")


def test_a_job_error_is_raised_by_the_next_submit_or_wait_and_stops_those_behind_it():
    import threading

    jobs = driver._InOrder("test-in-order-error")
    done: list[int] = []
    failed = threading.Event()

    def bad():
        failed.set()
        raise ValueError("check failed")

    jobs.submit(bad)
    jobs.submit(lambda: done.append(1))
    with pytest.raises(ValueError, match="check failed"):
        jobs.wait()
    assert done == []  # the job behind the error did not run

    jobs.submit(bad)
    failed.wait(5)
    while jobs._state.error is None:  # the thread records it just after the event
        threading.Event().wait(0.01)
    with pytest.raises(ValueError, match="check failed"):
        jobs.submit(lambda: done.append(2))
    jobs.wait()


def test_jobs_dropped_unwaited_end_their_thread():
    import gc
    import threading

    release = threading.Event()
    jobs = driver._InOrder("test-in-order-dropped")
    jobs.submit(release.wait)
    (t,) = _threads_named("test-in-order-dropped")
    del jobs
    gc.collect()
    release.set()
    t.join(5)
    assert not t.is_alive()


def test_a_runs_result_checks_beside_the_frames_are_timed_apart(
    scan_file, tiny_iq_priors, tiny_student
):
    from usdehaze.ultrasound.bench_run import run

    r = run(scan_file, _cfg(tiny_iq_priors, tiny_student, method="fast", batch=2))
    assert r["beside"]["result checks"] > 0  # in the thread, not on the run's path
