"""Nothing lost, nothing half-written on the way out: ``analyze`` JSONL, cache entries, bundles.

* ``analyze --output X.jsonl`` writes a hidden temporary file and renames it at the end; SIGTERM
  or SIGINT during a real run on a real video leaves no ``X.jsonl`` but ``X.jsonl.partial``
  (complete, decodable lines) and one ``error:`` line; a full disk (real ``ENOSPC`` from
  ``/dev/full``) leaves nothing and says so in one line.
* Cache entries and bundles are written to a temporary name and renamed: a write that fails
  (``ENOSPC``) or is interrupted (``KeyboardInterrupt``) leaves the previous entry/bundle intact
  and no temporary file behind.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from realtime_fer import cli
from realtime_fer.data import cache
from realtime_fer.data.cache import CachedLandmarks, load_entry, save_entry
from realtime_fer.landmarks.detector import NUM_LANDMARKS
from realtime_fer.models import onnx_export
from realtime_fer.models import bundle as bundle_mod
from realtime_fer.models.bundle import load_bundle, write_bundle
from realtime_fer.pipeline import sinks
from realtime_fer.pipeline.sinks import JsonlSink
from realtime_fer.publish import Status, message_from_dict
from runtime_helpers import model_cli_args, require_bundle, video

ROOT = Path(__file__).resolve().parents[1]
HAS_DEV_FULL = Path("/dev/full").exists()


def _status(i: int) -> Status:
    return Status("cam0", "no_face", 1.7e9 + i, frames=i, detail="x" * 50)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _dev_full(_target: object) -> object:
    """Stands in for the sink's file: every flush fails with the kernel's real ENOSPC."""
    if isinstance(_target, int):
        os.close(_target)
    return open("/dev/full", "w", encoding="utf-8")


# ---- the JSONL sink ------------------------------------------------------------------------
def test_the_jsonl_file_appears_only_when_committed(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.partial").write_text("stale\n")
    sink = JsonlSink(out, commit_on_close=False)  # as analyze uses it
    for i in range(5):
        sink.send(_status(i))
    sink.close()  # what the recognizer does at the end of a run
    assert not out.exists(), "the output must not appear before commit"
    hidden = [n for n in _files(tmp_path) if n.startswith(".out.jsonl.") and n.endswith(".tmp")]
    assert len(hidden) == 1
    sink.commit()
    assert _files(tmp_path) == ["out.jsonl"], "the temp file is renamed and a stale .partial removed"
    assert [message_from_dict(json.loads(line)).frames for line in out.read_text().splitlines()] == list(range(5))


def test_by_default_closing_publishes_the_file(tmp_path: Path) -> None:
    """For library use (a Recognizer with a JsonlSink): close() renames it into place."""
    sink = JsonlSink(tmp_path / "out.jsonl")
    sink.send(_status(0))
    assert _files(tmp_path) != ["out.jsonl"]
    sink.close()
    sink.close()
    assert _files(tmp_path) == ["out.jsonl"]


def test_an_aborted_file_keeps_only_complete_lines_as_partial(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous complete result\n")
    sink = JsonlSink(out, commit_on_close=False)
    for i in range(3):
        sink.send(_status(i))
    sink._fh.write('{"type": "status", "sch')  # a line cut short (a second signal mid-write)
    kept = sink.abort(keep_partial=True)
    assert kept == tmp_path / "out.jsonl.partial"
    lines = kept.read_text().splitlines()
    assert [message_from_dict(json.loads(line)).frames for line in lines] == [0, 1, 2]
    assert out.read_text() == "previous complete result\n", "the previous output is left as it was"
    assert _files(tmp_path) == ["out.jsonl", "out.jsonl.partial"]


def test_an_aborted_file_without_messages_leaves_nothing(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "out.jsonl", commit_on_close=False)
    assert sink.abort(keep_partial=True) is None
    assert _files(tmp_path) == []


@pytest.mark.skipif(not HAS_DEV_FULL, reason="needs Linux's /dev/full")
def test_a_full_disk_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinks, "_open_text", _dev_full)
    sink = JsonlSink(tmp_path / "out.jsonl", commit_on_close=False)
    failed = None
    for i in range(400):  # enough to overflow the write buffer
        try:
            sink.send(_status(i))
        except OSError as exc:
            failed = exc
            break
    assert failed is not None and failed.errno == errno.ENOSPC
    sink.send(_status(999))  # later messages are dropped, not raised again
    assert sink.dropped == 1
    with pytest.raises(OSError) as info:
        sink.commit()
    assert info.value.errno == errno.ENOSPC
    assert _files(tmp_path) == [], "no complete-looking file, no temp file"


@pytest.mark.skipif(not HAS_DEV_FULL, reason="needs Linux's /dev/full")
def test_a_full_disk_at_the_final_flush_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few small messages stay in the buffer: ENOSPC only surfaces when the file is closed."""
    monkeypatch.setattr(sinks, "_open_text", _dev_full)
    sink = JsonlSink(tmp_path / "out.jsonl", commit_on_close=False)
    sink.send(_status(0))
    sink.close()  # the recognizer's close: the error is kept, not raised
    assert sink.error is not None and sink.error.errno == errno.ENOSPC
    with pytest.raises(OSError):
        sink.commit()
    assert _files(tmp_path) == []


def test_bad_output_targets_are_clear_errors(tmp_path: Path) -> None:
    from realtime_fer.errors import FerError

    with pytest.raises(FerError, match="does not exist"):
        JsonlSink(tmp_path / "nope" / "out.jsonl")
    with pytest.raises(FerError, match="is a folder"):
        JsonlSink(tmp_path)


# ---- analyze, end to end -------------------------------------------------------------------
@pytest.mark.skipif(not HAS_DEV_FULL, reason="needs Linux's /dev/full")
def test_analyze_on_a_full_disk_is_one_error_line_and_no_file(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Real video, real MediaPipe, real ENOSPC (the sink's file is /dev/full)."""
    require_bundle()
    monkeypatch.setattr(sinks, "_open_text", _dev_full)
    out = tmp_path / "out.jsonl"
    rc = cli.main(["analyze", str(video(shared_data, "single_face.mp4")), "--output", str(out), *model_cli_args()])
    err = capsys.readouterr().err
    assert rc == 1, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "nothing was written" in errors[0], err[-2000:]
    assert "Traceback" not in err
    assert _files(tmp_path) == []


def _analyze_process(source: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "realtime_fer", "analyze", str(source), "--output", str(out), *model_cli_args()],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _first_prediction_written(folder: Path) -> bool:
    for p in folder.glob(".out.jsonl.*.tmp"):
        try:
            if '"type":"prediction"' in p.read_text(encoding="utf-8", errors="replace"):
                return True
        except FileNotFoundError:
            pass
    return False


@pytest.mark.parametrize("sig, times", [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 2)], ids=["SIGTERM", "SIGINT", "SIGTERM twice"])
def test_a_signal_during_analyze_leaves_a_marked_partial_file(shared_data: Path, tmp_path: Path, sig: signal.Signals, times: int) -> None:
    """Signal a real ``analyze`` of a 472-frame video once its first prediction is on disk
    (twice: the second signal interrupts the clean stop itself)."""
    require_bundle()
    out = tmp_path / "out.jsonl"
    proc = _analyze_process(video(shared_data, "WolfgangLanger_Pexels.mp4"), out)
    try:
        deadline = time.monotonic() + 120
        while not _first_prediction_written(tmp_path):
            assert proc.poll() is None, f"analyze ended before it was signalled: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "no prediction was written within 120 s"
            time.sleep(0.05)
        for _ in range(times):
            proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, stderr[-2000:])
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "interrupted after" in errors[0] and "out.jsonl.partial" in errors[0], stderr[-2000:]
    assert "wrote" not in stdout
    assert _files(tmp_path) == ["out.jsonl.partial"], "no out.jsonl that looks complete, no temp file"
    msgs = [message_from_dict(json.loads(line)) for line in (tmp_path / "out.jsonl.partial").read_text().splitlines()]
    assert any(m.TYPE == "prediction" for m in msgs)
    if times == 1:  # a clean stop: the stream's own end message is there
        assert isinstance(msgs[-1], Status) and msgs[-1].event == "ended" and msgs[-1].detail == "stopped"
    assert max(m.frame if m.TYPE == "prediction" else m.frames for m in msgs) < 472, "it was interrupted, not run to the end"


def test_an_uninterrupted_analyze_writes_the_complete_file(shared_data: Path, tmp_path: Path) -> None:
    require_bundle()
    out = tmp_path / "out.jsonl"
    proc = _analyze_process(video(shared_data, "single_face.mp4"), out)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    assert _files(tmp_path) == ["out.jsonl"]
    msgs = [message_from_dict(json.loads(line)) for line in out.read_text().splitlines()]
    assert msgs[-1].event == "ended" and msgs[-1].detail == "end of file" and msgs[-1].frames == 72
    assert f"wrote {len(msgs)} messages" in stdout


# ---- cache entries ---------------------------------------------------------------------------
def _entry(n: int) -> CachedLandmarks:
    return CachedLandmarks(np.full((n, NUM_LANDMARKS, 3), 0.5, np.float32), 25.0, (640, 360))


@pytest.mark.parametrize("failure", ["ENOSPC", "KeyboardInterrupt"])
def test_a_failed_cache_write_keeps_the_previous_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    path = tmp_path / "ab" / "abcd.npz"
    save_entry(path, _entry(3))
    real_savez = np.savez

    def broken_savez(fh, **arrays):  # noqa: ANN001, ANN003
        real_savez(fh, **arrays)
        fh.truncate(fh.tell() // 2)  # half the bytes, then the failure
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) if failure == "ENOSPC" else KeyboardInterrupt()

    monkeypatch.setattr(cache.np, "savez", broken_savez)
    with pytest.raises(OSError if failure == "ENOSPC" else KeyboardInterrupt):
        save_entry(path, _entry(7))
    monkeypatch.undo()
    assert _files(path.parent) == ["abcd.npz"], "no temporary file left"
    assert len(load_entry(path).landmarks) == 3, "the previous entry is intact"


# ---- bundles -------------------------------------------------------------------------------
@pytest.mark.parametrize("failure", ["ENOSPC", "KeyboardInterrupt"])
def test_a_failed_bundle_write_keeps_the_previous_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    shipped = require_bundle()
    nets = {e: shipped.network(e) for e in ("happy", "sad")}
    landmarks = {e: shipped.emotions[e].landmarks for e in nets}
    kw = dict(window={"length": shipped.window_length, "hop": shipped.hop}, blendshapes=shipped.blendshapes)
    out = write_bundle(tmp_path / "model", nets, landmarks, {"happy": 0.3, "sad": 0.3}, **kw)
    before = (out / "manifest.json").read_text()
    real_save = onnx_export.save_onnx
    calls = []

    def broken_save(net, path, **k):  # noqa: ANN001, ANN003
        calls.append(path)
        if len(calls) == 2:  # the first model written, the second fails half-way
            Path(path).write_bytes(b"\x08\x07")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) if failure == "ENOSPC" else KeyboardInterrupt()
        return real_save(net, path, **k)

    monkeypatch.setattr(onnx_export, "save_onnx", broken_save)
    monkeypatch.setattr(bundle_mod, "save_onnx", broken_save, raising=False)
    with pytest.raises(OSError if failure == "ENOSPC" else KeyboardInterrupt):
        write_bundle(out, nets, landmarks, {"happy": 0.9, "sad": 0.9}, **kw)
    assert len(calls) == 2
    assert _files(tmp_path) == ["model"], "no temporary bundle folder left"
    assert (out / "manifest.json").read_text() == before
    assert load_bundle(out).thresholds == {"happy": 0.3, "sad": 0.3}, "the previous bundle loads and verifies"


def test_a_new_bundle_replaces_the_old_one_whole(tmp_path: Path) -> None:
    shipped = require_bundle()
    nets = {"happy": shipped.network("happy")}
    kw = dict(window={"length": shipped.window_length, "hop": shipped.hop}, blendshapes=shipped.blendshapes)
    out = write_bundle(tmp_path / "model", nets, {"happy": shipped.emotions["happy"].landmarks}, {"happy": 0.3}, **kw)
    (out / "stray.txt").write_text("left by hand")
    write_bundle(out, nets, {"happy": shipped.emotions["happy"].landmarks}, {"happy": 0.6}, **kw)
    assert _files(tmp_path) == ["model"]
    assert sorted(p.name for p in out.iterdir()) == ["happy.onnx", "manifest.json"]
    assert load_bundle(out).thresholds == {"happy": 0.6}


# ---- other result files (evaluate, explain, extract, train and bench reports) -----------------
@pytest.mark.parametrize("failure", ["ENOSPC", "KeyboardInterrupt"])
def test_atomic_write_leaves_the_previous_file_on_failure(tmp_path: Path, failure: str) -> None:
    from realtime_fer.io_atomic import atomic_write, write_text_atomic

    out = tmp_path / "metrics.json"
    write_text_atomic(out, '{"old": 1}\n')
    with pytest.raises(OSError if failure == "ENOSPC" else KeyboardInterrupt):
        with atomic_write(out) as fh:
            fh.write('{"new": ')
            fh.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) if failure == "ENOSPC" else KeyboardInterrupt()
    assert _files(tmp_path) == ["metrics.json"]
    assert json.loads(out.read_text()) == {"old": 1}
    write_text_atomic(out, '{"new": 2}\n')
    assert json.loads(out.read_text()) == {"new": 2} and _files(tmp_path) == ["metrics.json"]


# ---- a signal during extract ---------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_extract_leaves_no_corrupt_cache_entry(shared_data: Path, tmp_path: Path, sig: signal.Signals) -> None:
    """Signal a real ``extract`` of 200 RAF-DB images once 5 entries exist: every entry left
    loads, and a second run completes the cache from there."""
    src = shared_data / "rafdb" / "train" / "happy"
    data = tmp_path / "data" / "happy"
    data.mkdir(parents=True)
    for p in sorted(src.iterdir())[:200]:
        (data / p.name).symlink_to(p)
    cache_dir = tmp_path / "cache"
    cmd = [sys.executable, "-m", "realtime_fer", "extract", str(tmp_path / "data"), "--output", str(cache_dir), "--workers", "0", "--no-progress"]
    # a shell without job control starts background jobs with SIGINT ignored, and a child
    # inherits that: give the child the default action whatever started pytest
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while len(list(cache_dir.glob("*/*.npz"))) < 5:
            assert proc.poll() is None, f"extract ended before it was signalled: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "no cache entry within 120 s"
            time.sleep(0.02)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0 and "Traceback" not in stderr, (proc.returncode, stderr[-2000:])
    entries = list(cache_dir.glob("*/*.npz"))
    assert 5 <= len(entries) < 200, len(entries)
    for e in entries:
        assert load_entry(e) is not None, f"corrupt cache entry {e}"
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(list(cache_dir.glob("*/*.npz"))) == 200
