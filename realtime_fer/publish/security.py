"""Secure publishing with ZeroMQ CURVE: key files, a ZAP allow-list, and exposure warnings.

CURVE (CurveZMQ, elliptic-curve Curve25519 keys) encrypts every message between the recognizer
and a subscriber and authenticates the recognizer to the subscriber: a subscriber connects with
the recognizer's *public* key and the handshake fails unless the peer holds the matching secret
key. With an allow-list, the recognizer also authenticates its subscribers: a ZAP handler
(:class:`zmq.auth.thread.ThreadAuthenticator`) accepts only clients whose public key is listed.

Key files are ZeroMQ's standard certificate format (``zmq.auth.load_certificate``), so they work
with any ZeroMQ tool:

* ``NAME.key``: the public certificate (``public-key = "..."``); hand it out freely.
* ``NAME.key_secret``: the public *and* secret key; mode 0600, keep it where it is used.

``realtime-fer keys NAME`` writes a pair (:func:`write_key_pair`). A server gets its
``.key_secret``; subscribers get the server's ``.key`` and their own ``.key_secret``; the
server's allow-list is a folder of (or one) client ``.key`` files.

Binding a non-loopback address without CURVE sends the predictions in clear text to anyone on
the network; :func:`warn_if_exposed` logs that risk once per publisher.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from realtime_fer.publish.errors import PublishError

log = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
"""File name ending of a public certificate."""
SECRET_SUFFIX = ".key_secret"
"""File name ending of a secret certificate (holds the public key too)."""

_Z85_KEY = re.compile(rb"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class CurveKeys:
    """A CURVE key pair as Z85 text (40 characters each); ``secret`` is ``None`` for a public
    certificate. ``source`` is the file it was read from (for messages)."""

    public: bytes
    secret: bytes | None = None
    source: str = ""


# --------------------------------------------------------------------------------------------
# availability
# --------------------------------------------------------------------------------------------
def curve_available() -> bool:
    """Whether the libzmq that pyzmq uses was built with CURVE (libsodium or tweetnacl)."""
    import zmq

    return bool(zmq.has("curve"))


def require_curve() -> None:
    """Raise :class:`PublishError` when libzmq has no CURVE support."""
    if not curve_available():
        import zmq

        raise PublishError(
            f"this libzmq ({zmq.zmq_version()}) was built without CURVE security; install a pyzmq wheel "
            "(they bundle libzmq with CURVE) or a libzmq built with libsodium"
        )


# --------------------------------------------------------------------------------------------
# key files
# --------------------------------------------------------------------------------------------
def key_paths(directory: str | Path, name: str) -> tuple[Path, Path]:
    """``(DIR/NAME.key, DIR/NAME.key_secret)``."""
    base = Path(directory)
    return base / f"{name}{PUBLIC_SUFFIX}", base / f"{name}{SECRET_SUFFIX}"


def write_key_pair(directory: str | Path, name: str, force: bool = False) -> tuple[Path, Path]:
    """Generate a CURVE key pair and write ``NAME.key`` (public) and ``NAME.key_secret``
    (secret, mode 0600) into ``directory`` (created if missing).

    The files are written by ``zmq.auth.create_certificates`` into a private (0700) temporary
    folder beside them and then moved into place, so the secret is never readable by others,
    not even for a moment.

    Raises:
        PublishError: ``name`` is not a plain file name, a file exists and ``force`` is false, or
            libzmq has no CURVE.
    """
    import zmq.auth

    require_curve()
    if not _KEY_NAME.match(name):
        raise PublishError(f"invalid key name {name!r}: use 1-64 letters, digits, '_', '-' or '.' (no slashes), starting with a letter or digit")
    directory = Path(directory)
    public_path, secret_path = key_paths(directory, name)
    if not force:
        existing = [str(p) for p in (public_path, secret_path) if p.exists()]
        if existing:
            raise PublishError(f"key pair {name!r} already exists ({', '.join(existing)}); pass --force to replace it")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(f"cannot create key folder {directory}: {exc.strerror or exc}") from None
    if not directory.is_dir():
        raise PublishError(f"{directory} is not a folder")
    with tempfile.TemporaryDirectory(prefix=".fer-keys-", dir=directory) as tmp:
        tmp_public, tmp_secret = zmq.auth.create_certificates(tmp, name)
        os.chmod(tmp_secret, 0o600)
        os.chmod(tmp_public, 0o644)
        os.replace(tmp_secret, secret_path)
        os.replace(tmp_public, public_path)
    log.info("wrote CURVE key pair %s and %s", public_path, secret_path)
    return public_path, secret_path


def load_keys(path: str | Path, need_secret: bool = False) -> CurveKeys:
    """Read a certificate file (``.key`` or ``.key_secret``).

    Args:
        path: the file.
        need_secret: require the secret key (a ``.key_secret`` file); it must belong to the
            public key in the same file.

    Raises:
        PublishError: the file is missing, unreadable, not a certificate, holds a malformed key,
            lacks the secret key when one is needed, or its keys do not match.
    """
    import zmq
    import zmq.auth

    p = Path(path)
    what = "secret key file" if need_secret else "key file"
    if not p.exists():
        hint = " (`realtime-fer keys NAME` writes NAME.key and NAME.key_secret)"
        raise PublishError(f"{what} not found: {p}{hint}")
    if not p.is_file():
        raise PublishError(f"{what} {p} is not a file")
    try:
        public, secret = zmq.auth.load_certificate(p)
    except ValueError:
        raise PublishError(f"{what} {p} is not a ZeroMQ certificate: no 'public-key = \"...\"' line") from None
    except OSError as exc:
        raise PublishError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    _check_z85(public, p, "public")
    if need_secret:
        if secret is None:
            raise PublishError(
                f"{p} holds only a public key; a secret key is needed here (the {SECRET_SUFFIX} file written by `realtime-fer keys`)"
            )
        _check_z85(secret, p, "secret")
        if zmq.curve_public(secret) != public:
            raise PublishError(f"{what} {p}: the public key does not belong to the secret key (the file was edited or mixed up)")
        _warn_if_readable_by_others(p)
    return CurveKeys(public=public, secret=secret if need_secret else None, source=str(p))


def load_allowed_clients(location: str | Path | Iterable[str | Path]) -> frozenset[bytes]:
    """Public keys of the clients allowed to subscribe.

    Args:
        location: a folder (every ``*.key`` file in it), one certificate file, or a list of
            certificate files.

    Raises:
        PublishError: a file is missing or malformed, or the folder holds no ``*.key`` file.
    """
    if isinstance(location, (str, Path)):
        p = Path(location)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.name.endswith(PUBLIC_SUFFIX) and f.is_file())
            if not files:
                raise PublishError(f"allowed-clients folder {p} holds no *{PUBLIC_SUFFIX} file, so no subscriber could connect")
        elif not p.exists():
            raise PublishError(f"allowed-clients folder or key file not found: {p}")
        else:
            files = [p]
    else:
        files = [Path(f) for f in location]
        if not files:
            raise PublishError("the list of allowed client key files is empty, so no subscriber could connect")
    return frozenset(load_keys(f).public for f in files)


def _check_z85(key: bytes, path: Path, which: str) -> None:
    from zmq.utils import z85

    try:
        ok = bool(_Z85_KEY.match(key)) and len(z85.decode(key)) == 32
    except Exception:  # noqa: BLE001 - z85.decode raises struct/index errors on bad text
        ok = False
    if not ok:
        raise PublishError(f"key file {path}: the {which} key is not a 40-character Z85 CURVE key")


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret key file %s can be read by other users (mode %03o); chmod 600 it", path, stat.S_IMODE(mode))


# --------------------------------------------------------------------------------------------
# sockets
# --------------------------------------------------------------------------------------------
class ClientAllowList:
    """ZAP credentials provider: accepts the CURVE clients whose public key is in ``keys``.

    A refused key is logged once at WARNING (a refused client retries every few hundred
    milliseconds), later refusals at DEBUG.
    """

    def __init__(self, keys: Iterable[bytes]) -> None:
        self.keys = frozenset(keys)
        self.refused: set[bytes] = set()
        self._lock = threading.Lock()

    def callback(self, domain: str, key: bytes) -> bool:
        """Called by the authenticator thread with the client's Z85 public key."""
        if key in self.keys:
            return True
        with self._lock:
            first = key not in self.refused
            self.refused.add(key)
        (log.warning if first else log.debug)(
            "refused a CURVE subscriber whose public key %s is not on the allow-list", key.decode("ascii", "replace")
        )
        return False


class CurveServer:
    """The server side of CURVE for one socket: its key pair and, with an allow-list, a ZAP
    authenticator thread on the socket's context.

    Only one ZAP handler can run per ZeroMQ context, so give each server with an allow-list a
    context of its own (:class:`~realtime_fer.publish.Publisher` does).

    Args:
        secret_key: the server's ``.key_secret`` file.
        allowed_clients: a folder or file(s) of client public keys (see
            :func:`load_allowed_clients`); ``None`` accepts any client that knows the server's
            public key.
        context: the ``zmq.Context`` of the socket to secure.
    """

    def __init__(self, secret_key: str | Path, allowed_clients: Any, context: Any) -> None:
        require_curve()
        self.keys = load_keys(secret_key, need_secret=True)
        self.allow_list: ClientAllowList | None = None
        self._auth: Any = None
        if allowed_clients is not None:
            import zmq
            from zmq.auth.thread import ThreadAuthenticator

            self.allow_list = ClientAllowList(load_allowed_clients(allowed_clients))
            auth = ThreadAuthenticator(context, log=logging.getLogger(__name__ + ".zap"))
            try:
                auth.start()
            except zmq.ZMQError as exc:
                auth.stop()
                raise PublishError(
                    f"cannot start the CURVE allow-list (ZAP handler): {exc}; only one can run per ZeroMQ context, "
                    "so give each publisher with an allow-list a context of its own"
                ) from None
            auth.configure_curve_callback("*", credentials_provider=self.allow_list)
            self._auth = auth

    def secure(self, socket: Any) -> None:
        """Make ``socket`` a CURVE server (before it binds)."""
        import zmq

        socket.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)
        socket.setsockopt(zmq.CURVE_SERVER, 1)

    def describe(self) -> str:
        who = "any client with the server key" if self.allow_list is None else f"{len(self.allow_list.keys)} allowed client key(s)"
        return f"CURVE ({who})"

    def stop(self) -> None:
        """Stop the authenticator thread. Idempotent."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def secure_client(socket: Any, server_key: str | Path, secret_key: str | Path | None = None) -> CurveKeys:
    """Make ``socket`` a CURVE client of the server whose public certificate is ``server_key``
    (before it connects).

    Args:
        secret_key: this client's ``.key_secret`` file (needed when the server has an
            allow-list); ``None`` uses a fresh one-off key pair.

    Returns:
        The client's keys.
    """
    import zmq

    require_curve()
    server = load_keys(server_key)
    if secret_key is not None:
        client = load_keys(secret_key, need_secret=True)
    else:
        public, secret = zmq.curve_keypair()
        client = CurveKeys(public=public, secret=secret, source="one-off key pair")
    socket.setsockopt(zmq.CURVE_SERVERKEY, server.public)
    socket.setsockopt(zmq.CURVE_PUBLICKEY, client.public)
    socket.setsockopt(zmq.CURVE_SECRETKEY, client.secret)
    return client


# --------------------------------------------------------------------------------------------
# exposure
# --------------------------------------------------------------------------------------------
_LOCAL_TRANSPORTS = ("ipc://", "inproc://")


def is_exposed(endpoint: str) -> bool:
    """Whether binding ``endpoint`` can be reached from other hosts.

    ``ipc://`` and ``inproc://`` are local; ``tcp://`` is local only on a loopback address
    (``127.x.x.x``, ``::1``, ``localhost``, ``lo``). Everything else (``tcp://*``,
    ``tcp://0.0.0.0``, a LAN address or interface, ``udp://``, ``ws://``, ``pgm://``...) is
    exposed.
    """
    import ipaddress

    if endpoint.startswith(_LOCAL_TRANSPORTS):
        return False
    if not endpoint.startswith("tcp://"):
        return True
    address = endpoint[len("tcp://"):]
    if ";" in address:  # source;destination form: the part after ';' is what is bound
        address = address.rsplit(";", 1)[1]
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host.strip("[]")
    if host in ("localhost", "lo"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # '*', an interface name or a host name: assume it reaches the network


def warn_if_exposed(endpoint: str, secured: bool, logger: logging.Logger | None = None) -> bool:
    """Log one WARNING when ``endpoint`` is reachable from the network and not ``secured``.

    Returns:
        Whether the warning was logged.
    """
    if secured or not is_exposed(endpoint):
        return False
    (logger or log).warning(
        "publishing on %s without CURVE: anyone who can reach this address can read every prediction "
        "(emotions, face boxes, landmarks) in clear text, and nothing checks who subscribes; set "
        "publish.curve_secret_key (run --curve-secret, keys from `realtime-fer keys`) or bind tcp://127.0.0.1",
        endpoint,
    )
    return True
