"""``realtime-fer keys NAME [--dir DIR] [--force]``: write a CURVE key pair for secure publishing.

Writes ``DIR/NAME.key`` (public certificate; give it to the other side) and
``DIR/NAME.key_secret`` (secret, mode 0600; keep it), in ZeroMQ's certificate format. See
docs/messages.md, *Secure publishing*.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="base name of the files, e.g. server or kiosk1")
    p.add_argument("--dir", default=".", metavar="DIR", help="folder to write into (created if missing; default: the current folder)")
    p.add_argument("--force", action="store_true", help="replace an existing key pair of that name")


def run(args: argparse.Namespace) -> int:
    from realtime_fer.publish.security import load_keys, write_key_pair

    public_path, secret_path = write_key_pair(args.dir, args.name, force=args.force)
    public = load_keys(public_path).public.decode("ascii")
    print(f"public key  {public_path}  (give this file to the other side)")
    print(f"secret key  {secret_path}  (mode 0600; keep it private)")
    print(f"public-key = {public}")
    return 0
