"""A throw-away S3 server on 127.0.0.1 (moto's standalone server) for tests and benchmarks.

It speaks the real S3 protocol over HTTP, so s3fs talks to it exactly as to AWS, MinIO or Ceph.
It listens on loopback only and holds everything in memory; it is stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from ..errors import Rb2vError

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
# Credentials for the loopback server only: moto accepts any, and real ones must never be sent there.
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dummy_aws_env() -> Iterator[dict[str, str]]:
    """Point botocore at the dummy credentials (and no profile) for the duration; restore after."""
    saved = {k: os.environ.get(k) for k in [*DUMMY_AWS_ENV, "AWS_PROFILE"]}
    os.environ.update(DUMMY_AWS_ENV)
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield dict(DUMMY_AWS_ENV)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def loopback_s3_server() -> Iterator[str]:
    """Start ``moto.server`` on 127.0.0.1:<free port>; yield its endpoint URL; stop it on exit."""
    try:
        import moto.server  # noqa: F401  (only to give a clear hint when missing)
    except ModuleNotFoundError:
        raise Rb2vError("the loopback S3 server needs moto: pip install 'moto[server]'") from None
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise Rb2vError(f"moto server exited at start (code {proc.returncode}) on {HOST}:{port}")
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise Rb2vError(
                        f"moto server did not listen on {HOST}:{port} within {START_TIMEOUT_S:.0f} s"
                    ) from None
                time.sleep(0.05)
        yield f"http://{HOST}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
