"""Extraction on a real Dask cluster: ``dask scheduler`` and ``dask worker`` processes on
loopback, started from the venv's executables, real MediaPipe on real files of ../shared/data.

A cluster extract must equal a local one file for file (the cache entries), evaluate's metrics
must equal, and a bad address, a scheduler without workers, a worker killed mid-job or all
workers gone must end in a retry or one clear ``error:`` line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from realtime_fer.data import _worker
from realtime_fer.data.extract import default_options, extract_dataset
from realtime_fer.data.layouts import SampleRef
from realtime_fer.errors import FerError

try:
    import distributed
except ImportError:  # the tests that need a cluster skip; the error messages are still tested
    distributed = None

NO_DASK = 'Dask is not installed: pip install "realtime-fer[distributed]"'
needs_dask = pytest.mark.skipif(distributed is None, reason=NO_DASK)

BIN = Path(sys.executable).parent
#: MEAD clips for the jobs that must last long enough to lose a worker mid-way.
LONG_CLIPS = ("surprise", "fear", "disgust", "sad")


def _link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A ``dask scheduler`` and ``n`` single-thread ``dask worker --no-nanny`` processes."""

    def __init__(self, workdir: Path, n_workers: int) -> None:
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
        self._env = env
        try:
            self.scheduler = self._start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"], "scheduler")
            self._wait_for_port()
            for i in range(n_workers):
                self.add_worker(i)
            if n_workers:
                self.wait_for_workers(n_workers)
        except BaseException:
            self.close()
            raise

    def _start(self, cmd: list[str], name: str) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(cmd, cwd=self.workdir, env=self._env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def add_worker(self, i: int) -> subprocess.Popen:
        w = self._start(
            [str(BIN / "dask"), "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}"], f"worker{i}"
        )
        self.workers.append(w)
        return w

    def _wait_for_port(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.scheduler.poll() is not None:
                raise RuntimeError(f"dask scheduler exited: {(self.workdir / 'scheduler.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("dask scheduler did not listen within 60 s")

    def wait_for_workers(self, n: int, timeout: float = 120.0) -> None:
        with distributed.Client(self.address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(n, timeout=timeout)

    def samples_done(self) -> int:
        """Samples the cluster's workers extracted so far."""
        with distributed.Client(self.address, timeout="30s", set_as_default=False) as client:
            return int(sum(client.run(_worker.remote_samples).values()))

    def busy_worker(self, timeout: float = 60.0) -> subprocess.Popen:
        """A worker process that is running a task now."""
        end = time.monotonic() + timeout
        with distributed.Client(self.address, timeout="30s", set_as_default=False) as client:
            while time.monotonic() < end:
                names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
                for addr, keys in client.processing().items():
                    if keys:
                        return self.workers[int(str(names[addr])[1:])]
                time.sleep(0.05)
        raise AssertionError("no worker was running a task")

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - kill cannot be ignored
                pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    if distributed is None:
        pytest.skip(NO_DASK)
    c = Cluster(tmp_path_factory.mktemp("dask2"), 2)
    yield c
    c.close()


@pytest.fixture
def fresh_cluster(tmp_path: Path):  # noqa: ANN201
    """Makes clusters for one test (whose workers get killed); closes them after it."""
    if distributed is None:
        pytest.skip(NO_DASK)
    made: list[Cluster] = []

    def make(n: int) -> Cluster:
        (tmp_path / f"dask{len(made)}").mkdir()
        made.append(Cluster(tmp_path / f"dask{len(made)}", n))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="module")
def tree(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 CK+48 stills, a short MEAD clip and an undecodable ``.jpg`` (symlinks)."""
    root = tmp_path_factory.mktemp("dtree")
    for label in ("happy", "surprise", "sad"):
        for p in sorted((shared_data / "ckplus48" / label).glob("*.png"))[:2]:
            _link(p, root / label / p.name)
    _link(shared_data / "video" / "mead" / "neutral.mp4", root / "neutral" / "mead_neutral.mp4")
    (root / "anger").mkdir()
    (root / "anger" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def local_cache(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("local_cache")
    extract_dataset(tree, cache, workers=2, progress=False)
    return cache


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime_fer", *args], capture_output=True, text=True, timeout=timeout)


def _entries(cache: Path) -> dict[str, Path]:
    return {str(p.relative_to(cache)): p for p in cache.rglob("*.npz")}


def _assert_same_cache(a: Path, b: Path) -> None:
    ea, eb = _entries(a), _entries(b)
    assert ea and sorted(ea) == sorted(eb)
    for name in ea:
        with np.load(ea[name]) as za, np.load(eb[name]) as zb:
            assert sorted(za.files) == sorted(zb.files), name
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k], err_msg=f"{name}: {k}")


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0, proc.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_cluster_extract_equals_local_file_for_file(cluster: Cluster, tree: Path, local_cache: Path, tmp_path: Path) -> None:
    cache = tmp_path / "dask_cache"
    before = cluster.samples_done()
    proc = _cli("extract", str(tree), "--output", str(cache), "--scheduler", cluster.address, "--no-progress", "--report", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    assert cluster.samples_done() - before == 8
    _assert_same_cache(local_cache, cache)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_samples"] == 7 and report["n_computed"] == 8 and report["n_failed"] == 1
    assert report["failed"][0]["reason"].startswith("cannot decode image")
    # the same samples again come from the cache written by this process
    again = extract_dataset(tree, cache, progress=False, executor=None)
    assert again.n_computed == 0 and again.n_cached == 8


def test_send_files_equals_local(cluster: Cluster, tree: Path, local_cache: Path, tmp_path: Path) -> None:
    from realtime_fer.data.executors import DaskExecutor, DaskOptions

    cache = tmp_path / "sent"
    before = cluster.samples_done()
    with DaskExecutor(DaskOptions(cluster.address, send_files=True)) as ex:
        res = extract_dataset(tree, cache, progress=False, executor=ex)
    assert cluster.samples_done() - before == 8
    assert len(res.samples) == 7 and len(res.failed) == 1
    _assert_same_cache(local_cache, cache)


def test_evaluate_on_the_cluster_equals_local(cluster: Cluster, tree: Path, tmp_path: Path) -> None:
    runs = {}
    before = cluster.samples_done()
    for name, extra in (("local", ["--workers", "2"]), ("dask", ["--scheduler", cluster.address])):
        out = tmp_path / f"{name}.json"
        proc = _cli("evaluate", "--data", str(tree), "--output", str(out), "--cache", str(tmp_path / f"cache_{name}"), "--no-progress", *extra)
        assert proc.returncode == 0, proc.stderr
        metrics = json.loads(out.read_text())
        metrics["video"].pop("confusion_png")
        runs[name] = metrics
    assert cluster.samples_done() - before == 8 == len(_entries(tmp_path / "cache_dask"))
    assert runs["local"]["overall"]["n_samples"] == 7
    assert runs["dask"] == runs["local"]
    _assert_same_cache(tmp_path / "cache_local", tmp_path / "cache_dask")


def test_leave_one_actor_out_on_the_cluster_equals_local(cluster: Cluster, shared_data: Path, tmp_path: Path) -> None:
    """Every extraction of a leave-one-actor-out run (training stills, speech-motion clips, the
    scored clips) goes to the cluster with ``--scheduler``; the folds' metrics equal a local run's."""
    from fer_testdata import CK_LABELS, RAF_LABELS, imagefolder
    from test_train_cli import write_video_recipe_config

    data = tmp_path / "clips"
    for name in ("happy", "neutral", "fear", "surprise"):
        _link(shared_data / "video" / "mead" / f"{name}.mp4", data / f"{name}.mp4")
    groups = tmp_path / "actors.yaml"
    groups.write_text("happy.mp4: man\nneutral.mp4: man\nfear.mp4: woman\nsurprise.mp4: woman\n")
    srcs = {"ck": imagefolder(shared_data / "ckplus48", tmp_path / "ck", CK_LABELS, 12), "raf": imagefolder(shared_data / "rafdb" / "train", tmp_path / "raf", RAF_LABELS, 12)}
    cfg = write_video_recipe_config(tmp_path / "train.yaml", srcs, tmp_path / "unused", shared_data / "video" / "talking", "  pooling: [mean, std]\n")
    runs, done = {}, {}
    for name, extra in (("local", ["--workers", "2"]), ("dask", ["--scheduler", cluster.address])):
        out = tmp_path / f"{name}.json"
        before = cluster.samples_done()
        proc = _cli("evaluate", "--data", str(data), "--output", str(out), "--leave-one-actor-out", str(cfg), "--groups", str(groups), "--cache", str(tmp_path / f"cache_{name}"), "--no-progress", *extra, timeout=600)
        assert proc.returncode == 0, proc.stderr
        metrics = json.loads(out.read_text())
        metrics["video"].pop("confusion_png")
        runs[name] = metrics
        done[name] = cluster.samples_done() - before
    assert done["local"] == 0 and done["dask"] == len(_entries(tmp_path / "cache_dask"))  # every sample ran on the cluster
    assert runs["dask"]["actors"] == ["man", "woman"]
    assert runs["dask"] == runs["local"]
    _assert_same_cache(tmp_path / "cache_local", tmp_path / "cache_dask")
    assert len(_entries(tmp_path / "cache_dask")) >= 4 + 2 + 12 * 7  # clips, talking clips, stills


def test_remote_batch_reads_bytes_or_refuses_missing_files(shared_data: Path, tmp_path: Path) -> None:
    img = sorted((shared_data / "ckplus48" / "happy").glob("*.png"))[0]
    config = _worker.WorkerConfig(options=default_options(), quiet_native=False)
    expected = _worker.environment(config.options)
    gone = SampleRef(tmp_path / "elsewhere" / img.name, "happy", "g", "image")
    try:
        sent = _worker.remote_batch([(gone, [img.read_bytes()])], config, expected)
        here = _worker.run_batch([SampleRef(img, "happy", "g", "image")], config)
        assert sent[0][0] == "ok" and np.array_equal(sent[0][1].landmarks, here[0][1].landmarks)
        with pytest.raises(_worker.WorkerEnvironmentError, match="cannot see .*--send-files"):
            _worker.remote_batch([(gone, None)], config, expected)
        with pytest.raises(_worker.WorkerEnvironmentError, match="model_sha256"):
            _worker.remote_batch([(gone, [img.read_bytes()])], config, {**expected, "model_sha256": "0" * 64})
    finally:
        _worker.close_detectors()


@pytest.mark.parametrize("address", ["nonsense", "tcp://127.0.0.1", "http://127.0.0.1:8786", "tcp://127.0.0.1:99999"])
def test_bad_scheduler_address_is_one_error_line(tmp_path: Path, address: str) -> None:
    line = _one_error_line(_cli("extract", str(tmp_path), "--output", str(tmp_path / "c"), "--scheduler", address, "--no-progress", timeout=60))
    assert "bad Dask scheduler address" in line


@needs_dask
def test_unreachable_scheduler_is_one_error_line(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    for cmd in (["extract", str(tmp_path), "--output", str(tmp_path / "c")], ["evaluate", "--data", str(tmp_path), "--output", str(tmp_path / "m.json")]):
        line = _one_error_line(_cli(*cmd, "--scheduler", address, "--scheduler-timeout", "2", "--no-progress", timeout=60))
        assert f"cannot reach the Dask scheduler at {address} within 2 s" in line
    assert not (tmp_path / "c").exists() or not _entries(tmp_path / "c")


def test_scheduler_without_workers_is_one_error_line(fresh_cluster, tmp_path: Path) -> None:  # noqa: ANN001
    c = fresh_cluster(0)
    line = _one_error_line(_cli("extract", str(tmp_path), "--output", str(tmp_path / "c"), "--scheduler", c.address, "--scheduler-timeout", "2", "--no-progress", timeout=60))
    assert "has no worker" in line and c.address in line


def test_send_files_without_scheduler_is_an_error(tmp_path: Path) -> None:
    line = _one_error_line(_cli("extract", str(tmp_path), "--output", str(tmp_path / "c"), "--send-files", timeout=60))
    assert "--send-files is used with --scheduler only" in line


def test_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from realtime_fer.data.executors import scheduler_executor

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(FerError, match=r"realtime-fer\[distributed\]"):
        with scheduler_executor("tcp://127.0.0.1:8786"):
            pass


def _clips(shared_data: Path, root: Path) -> Path:
    for name in LONG_CLIPS:
        _link(shared_data / "video" / "mead" / f"{name}.mp4", root / name / f"mead_{name}.mp4")
    return root


def _start_extract(data: Path, cache: Path, address: str, timeout_s: str = "10") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "realtime_fer", "extract", str(data), "--output", str(cache), "--scheduler", address, "--scheduler-timeout", timeout_s, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_entries(cache: Path, proc: subprocess.Popen, n: int = 1, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if cache.is_dir() and len(_entries(cache)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"no cache entry within {timeout} s (rc {proc.poll()})")


def test_worker_killed_mid_job_is_retried_on_the_other(fresh_cluster, shared_data: Path, tmp_path: Path) -> None:  # noqa: ANN001
    c = fresh_cluster(2)
    data = _clips(shared_data, tmp_path / "clips")
    cache = tmp_path / "dask_cache"
    proc = _start_extract(data, cache, c.address)
    try:
        _wait_for_entries(cache, proc)
        victim = c.busy_worker()  # its task must be run again by the other worker
        os.kill(victim.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "4 computed" in out
    local = tmp_path / "local_cache"
    extract_dataset(data, local, workers=2, progress=False)
    _assert_same_cache(local, cache)


def _extract_and_kill(data: Path, cache: Path, address: str, victim: subprocess.Popen) -> str:
    """Start an extract on the cluster, SIGKILL ``victim`` (a worker or the scheduler) once
    entries are cached, and return the command's one error line."""
    proc = _start_extract(data, cache, address, timeout_s="3")
    try:
        _wait_for_entries(cache, proc)
        os.kill(victim.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return _one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))


def test_all_workers_gone_is_one_error_line_and_keeps_results(fresh_cluster, shared_data: Path, tmp_path: Path) -> None:  # noqa: ANN001
    c = fresh_cluster(1)
    data = _clips(shared_data, tmp_path / "clips")
    cache = tmp_path / "dask_cache"
    line = _extract_and_kill(data, cache, c.address, c.workers[0])
    assert "no worker for 3 s" in line and "rerun resumes" in line
    kept = len(_entries(cache))
    assert 1 <= kept < len(LONG_CLIPS)
    # a rerun on a new worker resumes: only the missing clips are computed
    c.add_worker(9)
    c.wait_for_workers(1)
    proc = _cli("extract", str(data), "--output", str(cache), "--scheduler", c.address, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"{kept} from the cache, {len(LONG_CLIPS) - kept} computed" in proc.stdout


def test_scheduler_lost_mid_job_is_one_error_line(fresh_cluster, shared_data: Path, tmp_path: Path) -> None:  # noqa: ANN001
    c = fresh_cluster(1)
    data = _clips(shared_data, tmp_path / "clips")
    cache = tmp_path / "dask_cache"
    line = _extract_and_kill(data, cache, c.address, c.scheduler)
    assert c.address in line and "rerun resumes" in line


def _train_config(path: Path, ck: Path, cache: Path, out: Path) -> Path:
    path.write_text(
        f"""
data:
  sources:
    - {{path: "{ck}", name: ckplus48, licence: "CK+: non-commercial research use only"}}
  cache_dir: "{cache}"
  validation_fraction: 0.25
  calibration_fraction: 0.25
window: {{length: 4, hop: 2, still_jitter: 0.0015}}
model:
  family: randomized
  emotions: [happy, surprise, sad]
  min_positives: 4
  randomized: {{hidden: [64], activation: tanh, input_scale: 0.5, ridge: 0.01, direct_link: false, seed: 0}}
output: "{out}"
"""
    )
    return path


def test_train_on_the_cluster_equals_local(cluster: Cluster, shared_data: Path, tmp_path: Path) -> None:
    """``train --scheduler``: the training data's landmarks are extracted by the workers, and the
    bundle is the one a local run writes, file for file."""
    ck = tmp_path / "ck"
    for label in ("happy", "surprise", "sad"):
        for p in sorted((shared_data / "ckplus48" / label).glob("*.png"))[::6][:12]:
            _link(p, ck / label / p.name)
    manifests = {}
    before = cluster.samples_done()
    for name, extra in (("local", []), ("dask", ["--scheduler", cluster.address])):
        cfg = _train_config(tmp_path / f"{name}.yaml", ck, tmp_path / f"cache_{name}", tmp_path / f"bundle_{name}")
        proc = _cli("train", "--config", str(cfg), "--no-progress", *extra)
        assert proc.returncode == 0, proc.stderr
        manifests[name] = json.loads((tmp_path / f"bundle_{name}" / "manifest.json").read_text())
    assert cluster.samples_done() - before == len(list(ck.rglob("*.png")))
    assert manifests["dask"]["files"] == manifests["local"]["files"]
    _assert_same_cache(tmp_path / "cache_local", tmp_path / "cache_dask")


@needs_dask
def test_train_and_prune_with_an_unreachable_scheduler_are_one_error_line(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    (tmp_path / "ck" / "happy").mkdir(parents=True)
    cfg = _train_config(tmp_path / "train.yaml", tmp_path / "ck", tmp_path / "cache", tmp_path / "bundle")
    line = _one_error_line(_cli("train", "--config", str(cfg), "--scheduler", address, "--scheduler-timeout", "2", "--no-progress", timeout=60))
    assert f"cannot reach the Dask scheduler at {address} within 2 s" in line
    prune = tmp_path / "prune.yaml"
    prune.write_text(cfg.read_text() + f'prune: {{output: "{tmp_path / "prune_out"}", bundle: "{tmp_path / "pruned"}"}}\n')
    line = _one_error_line(_cli("prune", "--config", str(prune), "--scheduler", address, "--scheduler-timeout", "2", "--no-progress", timeout=60))
    assert f"cannot reach the Dask scheduler at {address} within 2 s" in line
