"""`make run`: Tansu, OpenBao, one database per service and the three services, until Ctrl-C.
A service that crashes is restarted with back-off; Tansu or OpenBao ending stops everything.

Start order is Kafka, Vault (bootstrapped with a per-run root token), then the services together;
stop order is the reverse. Signals only set a flag, so no start or stop step is ever cut in half
and every process started is stopped by its process group, whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType

from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import make_url

from moment_devstack import processes
from moment_devstack.children import (
    Child,
    ChildExited,
    ServiceProcess,
    StopRequested,
    check_running,
    log_tail,
    stop_children,
    wait_until_ready,
)
from moment_devstack.databases import resolve_databases
from moment_devstack.demo_set import DEMO_ROLES, DemoSetError, create_demo_set
from moment_devstack.stack import (
    KAFKA_PORT_VARIABLE,
    ROOT_TOKEN_FILE,
    SERVICES,
    VAULT_PORT_VARIABLE,
    RunDir,
    StackError,
    fixed_port,
    prepare_run_dir,
    service_environment,
    service_script,
    write_root_token,
)
from moment_devstack.supervisor import ServiceSupervisor
from moment_devstack.vault_bootstrap import (
    STOREFRONT,
    ServiceCredentials,
    VaultBootstrapError,
    bootstrap_vault,
)
from moment_persistence.config import safe_target

SUPERVISE_POLL_S = 0.25
INFRASTRUCTURE_LOST = (
    "it kept everything in memory, so the services cannot carry on: stopping the stack; "
    "`make run` again starts afresh"
)
INFRASTRUCTURE_STOP_TIMEOUT_S = 10.0
# Where a ready stack says how to reach it (no secrets), for `make demo` and other local tools.
STACK_FILE = "stack.json"


class StopSignal:
    """Set by SIGINT or SIGTERM; the stack checks it between steps and while running."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def check(self) -> None:
        if self._event.is_set():
            raise StopRequested


@dataclass
class Stack:
    """Everything started so far, in start order, so it can always be stopped in reverse."""

    run_dir: RunDir
    console: Console
    stop_signal: StopSignal
    infrastructure: list[processes.ManagedProcess] = field(default_factory=list)
    services: list[ServiceProcess] = field(default_factory=list)

    def children(self) -> list[Child]:
        return [*self.services, *self.infrastructure]

    def say(self, text: str) -> None:
        self.console.print(f"[bold cyan]moment:[/] {text}")

    def stop(self) -> None:
        stop_children(self.services)
        stop_children(reversed(self.infrastructure), INFRASTRUCTURE_STOP_TIMEOUT_S)


def _start_infrastructure(stack: Stack, process: processes.ManagedProcess) -> None:
    # Recorded before starting, so a process that never gets ready is still stopped.
    stack.infrastructure.append(process)
    process.start()
    stack.stop_signal.check()


def start_kafka(stack: Stack, environ: Mapping[str, str]) -> str:
    broker = processes.tansu(stack.run_dir.root, fixed_port(environ, KAFKA_PORT_VARIABLE))
    _start_infrastructure(stack, broker)
    bootstrap = f"{processes.LOOPBACK}:{broker.port}"
    log = escape(str(broker.log_path))
    stack.say(f"{'kafka (tansu)':<17} bootstrap {bootstrap}, pid {broker.pid}  log {log}")
    return bootstrap


def start_vault(
    stack: Stack, environ: Mapping[str, str]
) -> tuple[str, dict[str, ServiceCredentials]]:
    creds = stack.run_dir.creds
    token = write_root_token(creds)
    vault = processes.openbao(stack.run_dir.root, token, fixed_port(environ, VAULT_PORT_VARIABLE))
    _start_infrastructure(stack, vault)
    url = f"http://{processes.LOOPBACK}:{vault.port}"
    credentials = bootstrap_vault(url, token, creds, (*SERVICES, STOREFRONT))
    stack.stop_signal.check()
    token_file = escape(str(creds / ROOT_TOKEN_FILE))
    log = escape(str(vault.log_path))
    where = f"{url}, pid {vault.pid}"
    stack.say(f"{'vault (openbao)':<17} {where}  root token in {token_file}  log {log}")
    return url, credentials


def start_services(
    stack: Stack,
    kafka: str,
    vault: tuple[str, dict[str, ServiceCredentials]],
    urls: Mapping[str, str],
) -> None:
    vault_url, credentials = vault
    for service in SERVICES:
        env = service_environment(
            service,
            kafka=kafka,
            vault_url=vault_url,
            credentials=credentials[service],
            database_url=urls[service],
        )
        script = service_script(service, sys.executable)
        process = ServiceProcess(service, [str(script), "run"], stack.run_dir.log(service), env)
        stack.services.append(process)
        process.start()
    wait_until_ready(stack.services, stack.stop_signal.is_set)
    for process in stack.services:
        stack.say(f"{process.name:<17} up, pid {process.pid}  log {escape(str(process.log_path))}")


def create_demo_staff(
    stack: Stack, kafka: str, vault: tuple[str, dict[str, ServiceCredentials]], database_url: str
) -> None:
    """One staff account per role, through identity's own operator command; a failure is only
    reported, as the stack itself works without them."""
    vault_url, credentials = vault
    environment = service_environment(
        "identity",
        kafka=kafka,
        vault_url=vault_url,
        credentials=credentials["identity"],
        database_url=database_url,
    )
    began = time.monotonic()
    try:
        path = create_demo_set(stack.run_dir.creds, environment)
    except DemoSetError as exc:
        stack.stop_signal.check()
        stack.say(f"[yellow]demo staff not created:[/] {escape(str(exc))}")
        return
    stack.stop_signal.check()
    roles = len(DEMO_ROLES)
    took = time.monotonic() - began
    stack.say(
        f"{'demo staff':<17} {roles} accounts in {took:.1f}s, passwords in {escape(str(path))}"
    )


def start(stack: Stack, environ: Mapping[str, str]) -> None:
    stack.say(f"run folder {escape(str(stack.run_dir.root))}")
    # One left by a run that was killed would point at ports nothing listens on yet.
    (stack.run_dir.root / STACK_FILE).unlink(missing_ok=True)
    urls = resolve_databases(stack.run_dir.data, environ, SERVICES)
    for service, url in urls.items():
        stack.say(f"{service + ' database':<17} {escape(safe_target(make_url(url)))}")
    stack.stop_signal.check()
    kafka = start_kafka(stack, environ)
    vault = start_vault(stack, environ)
    start_services(stack, kafka, vault, urls)
    create_demo_staff(stack, kafka, vault, urls["identity"])
    write_stack_file(stack, kafka, vault[0])
    stack.say(f"[bold green]ready[/] — {len(stack.services)} services up; Ctrl-C to stop")


def write_stack_file(stack: Stack, kafka: str, vault_url: str) -> None:
    """Addresses only, readable by all (0644); removed on stop, so its presence means running."""
    path = stack.run_dir.root / STACK_FILE
    services = [service.name for service in stack.services]
    document = {"kafka": kafka, "vault": vault_url, "services": services}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o644)


def supervise(stack: Stack) -> None:
    """Run until a stop signal. A service that ends is restarted after a back-off wait; Tansu or
    OpenBao ending raises ChildExited, which stops the stack (see moment_devstack.supervisor)."""
    services = ServiceSupervisor(stack.services, stack.say)
    while not stack.stop_signal.wait(SUPERVISE_POLL_S):
        check_running(stack.infrastructure)
        services.poll()


def report_failure(stack: Stack, error: Exception) -> None:
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    err.print(f"[bold red]moment: {escape(str(error))}[/]")
    if isinstance(error, ChildExited):
        if error.child in stack.infrastructure:
            err.print(f"moment: {INFRASTRUCTURE_LOST}", markup=False)
        err.print(f"[dim]last lines of {escape(str(error.child.log_path))}:[/]")
        err.print(escape(log_tail(error.child.log_path)), markup=False)
    elif isinstance(error, StackError) and stack.services:
        for service in stack.services:
            if not service.ready():
                err.print(f"[dim]last lines of {escape(str(service.log_path))}:[/]")
                err.print(log_tail(service.log_path), markup=False)


def run_stack(console: Console, environ: Mapping[str, str] | None = None) -> int:
    """Start everything; run until SIGINT/SIGTERM (exit 0) or a failure (exit 1); stop it all."""
    environ = os.environ if environ is None else environ
    stop_signal = StopSignal()
    stop_signal.install()
    stack = Stack(prepare_run_dir(environ), console, stop_signal)
    try:
        start(stack, environ)
        supervise(stack)
    except StopRequested:
        pass
    except (StackError, processes.InfrastructureError, VaultBootstrapError, OSError) as error:
        report_failure(stack, error)
        return 1
    finally:
        (stack.run_dir.root / STACK_FILE).unlink(missing_ok=True)
        if stack.children():
            stack.say("stopping")
            stack.stop()
            stack.say("stopped")
    return 0
