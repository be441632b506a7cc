"""Secure publishing with ZeroMQ CURVE over real sockets (tcp on loopback, OS-chosen ports):
key files, the ZAP allow-list, who receives and who does not, errors, exposure warnings, and the
``keys`` / ``listen`` / ``run`` command lines."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from realtime_fer.publish import Prediction, PublishError, Publisher, PublisherOptions, Status, Subscriber
from runtime_helpers import free_port, model_cli_args, require_bundle, video
from realtime_fer.publish.security import (
    curve_available,
    is_exposed,
    load_allowed_clients,
    load_keys,
    warn_if_exposed,
    write_key_pair,
)

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "tcp://127.0.0.1:0"

pytestmark = pytest.mark.skipif(not curve_available(), reason="this libzmq was built without CURVE (zmq.has('curve') is False)")


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    """A server pair, an allowed client (its public key alone in clients/), a stranger client
    and a second server, all written by :func:`write_key_pair`."""
    out: dict[str, Path] = {}
    out["server.key"], out["server.secret"] = write_key_pair(tmp_path / "server", "server")
    out["other_server.key"], out["other_server.secret"] = write_key_pair(tmp_path / "other", "server")
    out["client.key"], out["client.secret"] = write_key_pair(tmp_path / "client", "kiosk")
    out["stranger.key"], out["stranger.secret"] = write_key_pair(tmp_path / "stranger", "kiosk")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "kiosk.key").write_bytes(out["client.key"].read_bytes())
    out["allowed"] = allowed
    return out


def _deliveries(pub: Publisher, subs: dict[str, Subscriber], seconds: float = 1.5) -> dict[str, int]:
    """Publish a status every 20 ms for ``seconds`` and count what each subscriber receives."""
    got = {name: 0 for name in subs}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pub.status("started", detail="probe")
        for name, sub in subs.items():
            while (msg := sub.recv(timeout=0.005)) is not None:
                assert isinstance(msg, Status) and msg.detail == "probe"
                got[name] += 1
        time.sleep(0.02)
    return got


def _sub(pub: Publisher, **curve: Any) -> Subscriber:
    return Subscriber(pub.endpoint, topics=["fer.cam0."], timeout=0.05, **{k: None if v is None else str(v) for k, v in curve.items()})


# --------------------------------------------------------------------------------------------
# who receives
# --------------------------------------------------------------------------------------------
def test_allow_list_only_the_listed_client_with_the_right_server_key_receives(keys: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="realtime_fer")
    with Publisher(LOOPBACK, curve_secret_key=str(keys["server.secret"]), curve_allowed_clients=str(keys["allowed"])) as pub:
        assert pub.secured
        subs = {
            "right": _sub(pub, curve_server_key=keys["server.key"], curve_secret_key=keys["client.secret"]),
            "no key": _sub(pub),
            "wrong server key": _sub(pub, curve_server_key=keys["other_server.key"], curve_secret_key=keys["client.secret"]),
            "not on the allow-list": _sub(pub, curve_server_key=keys["server.key"], curve_secret_key=keys["stranger.secret"]),
            "one-off client key": _sub(pub, curve_server_key=keys["server.key"]),
        }
        try:
            got = _deliveries(pub, subs)
        finally:
            for s in subs.values():
                s.close()
    assert got["right"] > 10, got
    assert {k: v for k, v in got.items() if k != "right"} == {k: 0 for k in got if k != "right"}
    stranger = load_keys(keys["stranger.key"]).public.decode()
    refusals = [r for r in caplog.records if "not on the allow-list" in r.getMessage()]
    assert any(stranger in r.getMessage() for r in refusals), "the refused key is logged"
    assert len([r for r in refusals if stranger in r.getMessage()]) == 1, "one warning per refused key, not one per retry"


def test_without_allow_list_any_client_with_the_server_key_receives(keys: dict[str, Path]) -> None:
    with Publisher(LOOPBACK, curve_secret_key=str(keys["server.secret"])) as pub:
        subs = {
            "one-off client key": _sub(pub, curve_server_key=keys["server.key"]),
            "own client key": _sub(pub, curve_server_key=keys["server.key"], curve_secret_key=keys["stranger.secret"]),
            "no key": _sub(pub),
            "wrong server key": _sub(pub, curve_server_key=keys["other_server.key"]),
        }
        try:
            got = _deliveries(pub, subs)
        finally:
            for s in subs.values():
                s.close()
    assert got["one-off client key"] > 10 and got["own client key"] > 10, got
    assert got["no key"] == 0 and got["wrong server key"] == 0, got


def test_a_curve_subscriber_gets_nothing_from_a_clear_text_publisher(keys: dict[str, Path]) -> None:
    """No silent downgrade: a client that expects CURVE does not accept an unsecured server."""
    with Publisher(LOOPBACK) as pub:
        subs = {"curve": _sub(pub, curve_server_key=keys["server.key"]), "plain": _sub(pub)}
        try:
            got = _deliveries(pub, subs, seconds=1.0)
        finally:
            for s in subs.values():
                s.close()
    assert got["curve"] == 0 and got["plain"] > 5, got


def test_the_plain_pyzmq_client_of_the_docs_receives(keys: dict[str, Path]) -> None:
    """docs/messages.md, *Secure publishing*: a raw pyzmq SUB socket with the certificate files."""
    import zmq
    import zmq.auth

    with Publisher(LOOPBACK, curve_secret_key=str(keys["server.secret"]), curve_allowed_clients=str(keys["allowed"])) as pub:
        server_public, _ = zmq.auth.load_certificate(keys["server.key"])
        public, secret = zmq.auth.load_certificate(keys["client.secret"])
        ctx = zmq.Context()
        sock = ctx.socket(zmq.SUB)
        try:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server_public, public, secret
            sock.setsockopt(zmq.SUBSCRIBE, b"fer.")
            sock.connect(pub.endpoint)
            parts = None
            deadline = time.monotonic() + 5
            while parts is None and time.monotonic() < deadline:
                pub.status("started", detail="raw")
                if sock.poll(50):
                    parts = sock.recv_multipart()
        finally:
            sock.close(linger=0)
            ctx.term()
    assert parts is not None and parts[0] == b"fer.cam0.status."


def test_closing_a_curve_publisher_stops_its_authenticator(keys: dict[str, Path]) -> None:
    before = threading.active_count()
    for _ in range(3):
        pub = Publisher(LOOPBACK, curve_secret_key=str(keys["server.secret"]), curve_allowed_clients=str(keys["client.key"]))
        pub.close()
        pub.close()  # idempotent
    assert threading.active_count() == before


# --------------------------------------------------------------------------------------------
# key files
# --------------------------------------------------------------------------------------------
def test_key_files_are_zeromq_certificates_with_a_private_secret(keys: dict[str, Path]) -> None:
    import zmq.auth

    public, none = zmq.auth.load_certificate(keys["server.key"])
    public2, secret = zmq.auth.load_certificate(keys["server.secret"])
    assert none is None and public == public2 and zmq.curve_public(secret) == public
    assert stat.S_IMODE(keys["server.secret"].stat().st_mode) == 0o600
    assert not [p for p in keys["server.key"].parent.iterdir() if p.name.startswith(".fer-keys-")], "temporary folder removed"
    loaded = load_keys(keys["server.secret"], need_secret=True)
    assert loaded.public == public and loaded.secret == secret
    assert load_allowed_clients(keys["allowed"]) == {load_keys(keys["client.key"]).public}
    assert load_allowed_clients([keys["client.key"], keys["stranger.key"]]) == {
        load_keys(keys["client.key"]).public,
        load_keys(keys["stranger.key"]).public,
    }


def test_write_key_pair_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    public, secret = write_key_pair(tmp_path, "cam")
    first = load_keys(secret, need_secret=True)
    with pytest.raises(PublishError, match="already exists.*--force"):
        write_key_pair(tmp_path, "cam")
    assert load_keys(secret, need_secret=True) == first
    write_key_pair(tmp_path, "cam", force=True)
    assert load_keys(secret, need_secret=True).public != first.public
    with pytest.raises(PublishError, match="invalid key name"):
        write_key_pair(tmp_path, "../escape")


def _replace_key(path: Path, which: str, value: str) -> str:
    lines = path.read_text().splitlines()
    return "\n".join(f'    {which} = "{value}"' if line.strip().startswith(which) else line for line in lines) + "\n"


def test_missing_and_malformed_key_files_are_clear_errors(keys: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "garbage.key").write_text("this is not a certificate\n")
    (bad / "short.key").write_text(_replace_key(keys["client.key"], "public-key", "tooshort"))
    mixed = load_keys(keys["other_server.key"]).public.decode()
    (bad / "mixed.key_secret").write_text(_replace_key(keys["server.secret"], "public-key", mixed))
    (bad / "binary.key").write_bytes(os.urandom(64))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (lambda: load_keys(tmp_path / "nope.key"), "key file not found: .*nope.key"),
        (lambda: load_keys(bad), "is not a file"),
        (lambda: load_keys(bad / "garbage.key"), "not a ZeroMQ certificate"),
        (lambda: load_keys(bad / "binary.key"), "not a ZeroMQ certificate"),
        (lambda: load_keys(bad / "short.key"), "not a 40-character Z85 CURVE key"),
        (lambda: load_keys(keys["server.key"], need_secret=True), "holds only a public key"),
        (lambda: load_keys(bad / "mixed.key_secret", need_secret=True), "does not belong to the secret key"),
        (lambda: load_allowed_clients(empty), "holds no \\*.key file"),
        (lambda: load_allowed_clients(tmp_path / "absent"), "not found"),
        (lambda: Publisher(LOOPBACK, curve_secret_key=str(tmp_path / "nope.key_secret")), "secret key file not found"),
        (lambda: Publisher(LOOPBACK, curve_secret_key=str(keys["server.key"])), "holds only a public key"),
        (lambda: Publisher(LOOPBACK, curve_secret_key=str(keys["server.secret"]), curve_allowed_clients=str(empty)), "no \\*.key"),
        (lambda: Subscriber(LOOPBACK, curve_server_key=str(bad / "garbage.key")), "not a ZeroMQ certificate"),
        (lambda: Subscriber(LOOPBACK, curve_secret_key=str(keys["client.secret"])), "needs the server's public key"),
    ]
    threads = threading.active_count()
    for make, match in cases:
        with pytest.raises(PublishError, match=match):
            make()
    assert threading.active_count() == threads, "a failed start leaves no authenticator thread behind"


def test_two_allow_lists_in_one_context_are_a_clear_error(keys: dict[str, Path]) -> None:
    import zmq

    ctx = zmq.Context()
    secured = {"curve_secret_key": str(keys["server.secret"]), "curve_allowed_clients": str(keys["allowed"])}
    try:
        with Publisher(LOOPBACK, context=ctx, **secured):
            with pytest.raises(PublishError, match="only one can run per ZeroMQ context"):
                Publisher(LOOPBACK, context=ctx, **secured)
        with Publisher(LOOPBACK, **secured), Publisher(LOOPBACK, **secured):  # each in its own context
            pass
    finally:
        ctx.term()


def test_a_secret_key_readable_by_others_is_warned_about(keys: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    os.chmod(keys["server.secret"], 0o644)
    with caplog.at_level(logging.WARNING, logger="realtime_fer"):
        load_keys(keys["server.secret"], need_secret=True)
    assert any("can be read by other users" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------
# configuration and the exposure warning
# --------------------------------------------------------------------------------------------
def test_publish_options_name_the_key_files(keys: dict[str, Path]) -> None:
    from realtime_fer.config_io import from_dict
    from realtime_fer.errors import ConfigError
    from realtime_fer.pipeline.config import load_runtime_config

    defaults = load_runtime_config(ROOT / "configs" / "runtime_default.yaml").publish
    assert defaults.curve_secret_key is None and defaults.curve_allowed_clients is None
    opts = from_dict(PublisherOptions, {"endpoint": LOOPBACK, "curve_secret_key": str(keys["server.secret"]), "curve_allowed_clients": str(keys["allowed"])}, "publish")
    with Publisher.from_options(opts) as pub:
        assert pub.secured
    with pytest.raises(ConfigError, match="curve_allowed_clients needs curve_secret_key"):
        from_dict(PublisherOptions, {"curve_allowed_clients": str(keys["allowed"])}, "publish")
    with pytest.raises(ConfigError, match="publish.curve_secret_key"):
        from_dict(PublisherOptions, {"curve_secret_key": 5}, "publish")


@pytest.mark.parametrize(
    "endpoint, exposed",
    [
        ("tcp://*:5556", True),
        ("tcp://0.0.0.0:5556", True),
        ("tcp://[::]:5556", True),
        ("tcp://192.168.1.20:5556", True),
        ("tcp://eth0:5556", True),
        ("ws://127.0.0.1:5556", True),
        ("tcp://127.0.0.1:5556", False),
        ("tcp://127.0.0.2:0", False),
        ("tcp://[::1]:5556", False),
        ("tcp://localhost:5556", False),
        ("tcp://lo:5556", False),
        ("ipc:///tmp/fer", False),
        ("inproc://fer", False),
    ],
)
def test_which_endpoints_are_exposed(endpoint: str, exposed: bool) -> None:
    assert is_exposed(endpoint) is exposed
    assert warn_if_exposed(endpoint, secured=True) is False


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "without CURVE" in r.getMessage()]


def test_binding_every_interface_without_curve_warns_once(keys: dict[str, Path], caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.WARNING, logger="realtime_fer")
    with Publisher("tcp://*:0"):
        pass
    found = _warnings(caplog)
    assert len(found) == 1 and "tcp://*:0" in found[0] and "anyone" in found[0] and "read every prediction" in found[0]
    caplog.clear()
    with Publisher(LOOPBACK), Publisher(f"ipc://{tmp_path}/p.ipc"), Publisher("tcp://*:0", curve_secret_key=str(keys["server.secret"])):
        pass
    assert _warnings(caplog) == []


# --------------------------------------------------------------------------------------------
# command lines
# --------------------------------------------------------------------------------------------
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "realtime_fer", *args]


def test_keys_command_writes_a_pair_and_refuses_to_overwrite(tmp_path: Path) -> None:
    r = subprocess.run(_cli("keys", "server", "--dir", str(tmp_path / "k")), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    public, secret = tmp_path / "k" / "server.key", tmp_path / "k" / "server.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    key = load_keys(secret, need_secret=True).public.decode()
    assert load_keys(public).public.decode() == key and key in r.stdout and str(public) in r.stdout
    again = subprocess.run(_cli("keys", "server", "--dir", str(tmp_path / "k")), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert again.returncode == 2 and again.stderr.startswith("error:") and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert load_keys(secret, need_secret=True).public.decode() == key
    forced = subprocess.run(_cli("keys", "server", "--dir", str(tmp_path / "k"), "--force"), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert forced.returncode == 0 and load_keys(public).public.decode() != key


def test_run_flags_set_the_publish_options(keys: dict[str, Path]) -> None:
    from realtime_fer.cli import build_parser
    from realtime_fer.commands._runtime import runtime_config

    args = build_parser().parse_args(["run", "--curve-secret", str(keys["server.secret"]), "--curve-clients", str(keys["allowed"])])
    publish = runtime_config(args).publish
    assert publish.curve_secret_key == str(keys["server.secret"]) and publish.curve_allowed_clients == str(keys["allowed"])


def _listen(pub: Publisher, *args: str) -> subprocess.CompletedProcess[str]:
    """``realtime-fer listen ARGS`` while a thread keeps publishing predictions until it exits."""
    proc = subprocess.Popen(_cli("listen", "--connect", pub.endpoint, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    stop = threading.Event()

    def feed() -> None:
        frame = 0
        while not stop.is_set() and proc.poll() is None:
            pub.publish(Prediction(stream="cam0", frame=frame, face=4, bbox=[1, 2, 3, 4], probabilities={"happy": 0.9}, top="happy", t_capture=time.time()))
            frame += 1
            time.sleep(0.02)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        feeder.join(5)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_listen_with_the_right_keys_prints_and_with_a_wrong_key_stops_empty_handed(keys: dict[str, Path]) -> None:
    with Publisher(LOOPBACK, curve_secret_key=str(keys["server.secret"]), curve_allowed_clients=str(keys["allowed"])) as pub:
        right = _listen(pub, "--curve-server-key", str(keys["server.key"]), "--curve-key", str(keys["client.secret"]), "--count", "3", "--timeout", "20")
        wrong = _listen(pub, "--curve-server-key", str(keys["server.key"]), "--curve-key", str(keys["stranger.secret"]), "--count", "1", "--timeout", "2")
        plain = _listen(pub, "--count", "1", "--timeout", "2")
    assert right.returncode == 0, right.stderr
    lines = right.stdout.strip().splitlines()
    assert len(lines) == 3 and all("face 4" in line and "HAPPY" in line for line in lines), lines
    assert wrong.returncode == 1 and wrong.stdout == "" and "no message" in wrong.stderr and "allow-list" in wrong.stderr
    assert plain.returncode == 1 and plain.stdout == "" and "--curve-server-key" in plain.stderr
    assert "Traceback" not in wrong.stderr + plain.stderr


def test_listen_with_a_missing_key_file_is_a_clean_error(tmp_path: Path) -> None:
    r = subprocess.run(_cli("listen", "--curve-server-key", str(tmp_path / "server.key"), "--timeout", "1"), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("error: key file not found") and "Traceback" not in r.stderr


def test_listen_against_a_curve_secured_run_process(keys: dict[str, Path], shared_data: Path) -> None:
    """The whole path: `realtime-fer run --curve-secret --curve-clients` on a real video, a
    `listen` with the allowed key receives predictions; while it still publishes, a `listen`
    with a key off the allow-list receives nothing and a second allowed one does."""
    require_bundle()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    run_cmd = _cli(
        "run", "--source", str(video(shared_data, "WolfgangLanger_Pexels.mp4")), "--realtime", "--duration", "40",
        "--publish", endpoint, "--stream-id", "curve", "--curve-secret", str(keys["server.secret"]),
        "--curve-clients", str(keys["allowed"]), *model_cli_args(),
    )  # fmt: skip
    listen = ["listen", "--connect", endpoint, "--topic", "fer.curve.face.", "--curve-server-key", str(keys["server.key"])]
    procs: list[subprocess.Popen[str]] = []

    def start(cmd: list[str]) -> subprocess.Popen[str]:
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT))
        return procs[-1]

    try:
        first = start(_cli(*listen, "--curve-key", str(keys["client.secret"]), "--count", "3", "--timeout", "90"))
        recognizer = start(run_cmd)
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert len(out.strip().splitlines()) == 3 and all(" curve #" in line for line in out.splitlines()), out
        assert recognizer.poll() is None, "the video still plays (--realtime)"
        stranger = start(_cli(*listen, "--curve-key", str(keys["stranger.secret"]), "--count", "1", "--timeout", "3"))
        second = start(_cli(*listen, "--curve-key", str(keys["client.secret"]), "--count", "1", "--timeout", "3"))
        s_out, s_err = stranger.communicate(timeout=60)
        ok_out, ok_err = second.communicate(timeout=60)
        assert recognizer.poll() is None, "still publishing while the stranger listened"
        recognizer.terminate()
        r_out, r_err = recognizer.communicate(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    assert second.returncode == 0 and len(ok_out.strip().splitlines()) == 1, ok_err
    assert stranger.returncode == 1 and s_out == "" and "no message" in s_err, s_err
    assert recognizer.returncode == 0 and "summary:" in r_out, r_err
    stranger_key = load_keys(keys["stranger.key"]).public.decode()
    assert "not on the allow-list" in r_err and stranger_key in r_err
    assert "without CURVE" not in r_err and "Traceback" not in r_err
