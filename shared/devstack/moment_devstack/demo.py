"""`make demo`: a storefront's day against the running `make run` stack, one line per step.

Two made-up customers register (an Arabic name and an English one), log in, fail, get locked out
and recover; a support operator reads a profile for a purpose and is refused without one or beyond
the role; a customer exports their data and the privacy officer erases it. Only the storefront
client is used, as a real storefront would. No password, answer, e-mail or username is printed:
the only values shown are the made-up names, read back by someone entitled to them.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.markup import escape

from moment_client.admin import BrokerUnavailable
from moment_client.client import ClientConfig, RequestClient
from moment_client.errors import MomentClientError, ServiceError
from moment_client.identity import IdentityClient
from moment_contracts.errors import ErrorCode
from moment_contracts.identity import Locale, RegistrationFields, Session
from moment_contracts.profile import Purpose, ReadableField
from moment_devstack.demo_set import DEMO_FILE, DemoAccount, write_private
from moment_devstack.processes import port_open
from moment_devstack.run import STACK_FILE
from moment_devstack.stack import DEFAULT_RUN_DIR, RUN_DIR_VARIABLE, RunDir

EXIT_OK, EXIT_SURPRISE, EXIT_NO_STACK = 0, 1, 2
# The made-up customers' passwords and answers, 0600, so a developer can go on by hand: customer
# B's password is the new one set by recovery; customer A is erased by the end.
CUSTOMERS_FILE = "demo-customers.json"
OPERATOR, OFFICER = "support-operator", "privacy-officer"
MAX_GUESSES = 20
WHAT_WIDTH = 54
T = TypeVar("T")


class DemoError(RuntimeError):
    """The demo could not go on. Messages never hold a personal value."""


class NoStack(DemoError):
    """No `make run` stack is running in the run folder."""


@dataclass(frozen=True)
class Customer:
    label: str
    locale: Locale
    fields: RegistrationFields
    new_password: str

    def __repr__(self) -> str:
        return f"Customer({self.label!r})"


def made_up_customer(
    label: str, locale: Locale, handle: str, name: str, question: str, answer: str
) -> Customer:
    """Fresh for every run (the stack keeps its data), with random secrets that double as
    canaries: none may ever show up in the output or in a log."""
    handle = f"{handle}.{secrets.token_hex(3)}"
    fields = RegistrationFields(
        username=handle,
        email=f"{handle}@example.test",
        password=secrets.token_urlsafe(15),
        name=name,
        age=34,
        recovery_question=question,
        recovery_answer=f"{answer} {secrets.token_hex(4)}",
    )
    return Customer(label, locale, fields, new_password=secrets.token_urlsafe(15))


def made_up_customers() -> tuple[Customer, Customer]:
    a = made_up_customer(
        "customer A", "ar", "layla", "ليلى الحسيني", "ما اسم أول مدرسة لك؟", "النخيل"
    )
    b = made_up_customer("customer B", "en", "oliver", "Oliver Bennett", "Your first pet?", "Rex")
    return a, b


def current_run_dir(environ: Mapping[str, str]) -> RunDir:
    return RunDir(Path(environ.get(RUN_DIR_VARIABLE) or DEFAULT_RUN_DIR).resolve())


def find_kafka(run_dir: RunDir) -> str:
    """The bootstrap address of the running stack, from the file `make run` writes when ready."""
    path = run_dir.root / STACK_FILE
    try:
        kafka = str(json.loads(path.read_text(encoding="utf-8"))["kafka"])
    except FileNotFoundError:
        raise NoStack(f"no stack is running ({path} is missing): `make run` first") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise NoStack(f"{path} is unreadable: restart the stack with `make run`") from None
    host, _, port = kafka.rpartition(":")
    if not port.isdigit() or not port_open(int(port), host):
        raise NoStack(f"nothing listens at {kafka}: the stack has stopped; `make run` again")
    return kafka


def load_staff(run_dir: RunDir) -> dict[str, DemoAccount]:
    path = run_dir.creds / DEMO_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        staff = {role: DemoAccount(role=role, **fields) for role, fields in data.items()}
    except (OSError, ValueError, TypeError):
        raise NoStack(f"{path} is unreadable: `python -m moment_devstack demo-set`") from None
    if missing := {OPERATOR, OFFICER} - staff.keys():
        raise NoStack(f"{path} lacks {', '.join(sorted(missing))}: run `demo-set` again")
    return staff


def save_customers(run_dir: RunDir, customers: tuple[Customer, ...]) -> Path:
    document = {
        c.label: {
            "username": c.fields.username,
            "registered_password": c.fields.password,
            "recovery_answer": c.fields.recovery_answer,
            "new_password": c.new_password,
        }
        for c in customers
    }
    path = run_dir.creds / CUSTOMERS_FILE
    write_private(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return path


class Narrator:
    """One line per step: what was tried, how it went, and the typed error code if any."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._step = 0
        self.surprises = 0

    def _line(self, what: str, verdict: str, detail: str) -> None:
        self._step += 1
        line = f"[dim]{self._step:>2}[/] {escape(what):<{WHAT_WIDTH}} {verdict}  {detail}"
        self._console.print(line.rstrip())

    def ok(self, what: str, detail: str = "") -> None:
        self._line(what, "[green]ok[/]", detail)

    def refused(self, what: str, error: ServiceError, detail: str = "") -> None:
        wait = error.reply.retry_after_s
        code = f"{error.code}, retry after {wait} s" if wait is not None else str(error.code)
        self._line(what, f"[yellow]refused[/] [bold]{code}[/]", detail)

    def surprise(self, what: str, detail: str) -> None:
        self.surprises += 1
        self._line(what, "[bold red]UNEXPECTED[/]", escape(detail))


def name_of(values: Mapping[str, str]) -> str:
    """The one value the demo shows: a made-up name, read back by someone entitled to it."""
    return f"name = {escape(values.get('name', '?'))}"


@dataclass
class Demo:
    identity: IdentityClient
    narrator: Narrator
    staff: Mapping[str, DemoAccount]
    source: str = field(default_factory=lambda: f"demo-device-{secrets.token_hex(4)}")
    subjects: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    async def must(self, what: str, call: Awaitable[T]) -> T:
        """A step later ones build on: a refusal stops the demo."""
        try:
            return await call
        except ServiceError as exc:
            self.narrator.surprise(what, f"refused with {exc.code}")
            raise DemoError(f"{what}: refused with {exc.code}; the rest builds on it") from None

    async def refused(
        self, what: str, call: Awaitable[object], code: ErrorCode, detail: str = ""
    ) -> ServiceError | None:
        """A step the policy must refuse, with exactly this code."""
        try:
            await call
        except ServiceError as exc:
            if exc.code == code:
                self.narrator.refused(what, exc, detail)
            else:
                self.narrator.surprise(what, f"refused with {exc.code}, expected {code}")
            return exc
        self.narrator.surprise(what, f"allowed, expected {code}")
        return None

    def subject(self, customer: Customer) -> str:
        return self.subjects[customer.label]

    def login(self, identifier: str, password: str) -> Awaitable[tuple[str, Session]]:
        return self.identity.login(identifier, password, source=self.source)

    def answer(self, customer: Customer, answer: str) -> Awaitable[str]:
        """Answer the recovery question, setting the customer's new password if it is right."""
        username, password = customer.fields.username, customer.new_password
        return self.identity.answer_recovery(username, answer, password, source=self.source)

    def read(
        self, token: str, customer: Customer, names: tuple[ReadableField, ...], purpose: bool
    ) -> Awaitable[dict[str, str]]:
        why: Purpose | None = "user-dealings" if purpose else None
        return self.identity.read(token, self.subject(customer), names, purpose=why)


async def register(demo: Demo, customers: tuple[Customer, ...]) -> None:
    for customer in customers:
        script = "Arabic" if customer.locale == "ar" else "English"
        what = f"register {customer.label} ({script} name, locale {customer.locale})"
        accepted = await demo.must(
            what, demo.identity.register(customer.fields, locale=customer.locale)
        )
        demo.subjects[customer.label] = accepted.subject_id
        demo.narrator.ok(what, f"{accepted.status}, subject {accepted.subject_id[:8]}…")


async def log_in(
    demo: Demo, customer: Customer, identifier: str, password: str, what: str, detail: str = ""
) -> None:
    subject_id, session = await demo.must(what, demo.login(identifier, password))
    if subject_id != demo.subject(customer):
        demo.narrator.surprise(what, "logged in as another subject")
        return
    demo.tokens[customer.label] = session.token
    until = session.expires_at.strftime("%H:%M:%S %Z")
    demo.narrator.ok(what, f"{detail}session until {until}".strip())


async def fail_logins(demo: Demo, customer: Customer) -> None:
    """Wrong password and unknown account get one and the same reply; guessing locks the account,
    and then even the right password is refused until the lock lifts."""
    who, username = customer.label, customer.fields.username
    wrong = await demo.refused(
        f"{who} logs in with a wrong password",
        demo.login(username, secrets.token_urlsafe(12)),
        ErrorCode.LOGIN_FAILED,
    )
    ghost = f"nobody.{secrets.token_hex(4)}@example.test"
    unknown = await demo.refused(
        "an unknown account logs in",
        demo.login(ghost, secrets.token_urlsafe(12)),
        ErrorCode.LOGIN_FAILED,
    )
    what = "uniform failure: unknown account vs wrong password"
    if wrong and unknown and wrong.reply == unknown.reply:
        demo.narrator.ok(what, "the same reply, so nobody learns who is registered")
    elif wrong and unknown:
        demo.narrator.surprise(what, "the replies differ")
    await guess_until_locked(demo, customer)
    await demo.refused(
        f"{who} tries the right password while locked",
        demo.login(username, customer.fields.password),
        ErrorCode.LOCKED_OUT,
    )


async def guess_until_locked(demo: Demo, customer: Customer) -> None:
    what = f"{customer.label} keeps guessing"
    for guess in range(2, MAX_GUESSES + 1):
        try:
            await demo.login(customer.fields.username, secrets.token_urlsafe(12))
        except ServiceError as exc:
            if exc.code == ErrorCode.LOCKED_OUT:
                detail = f"after {guess - 1} failed attempts ({ErrorCode.LOGIN_FAILED} each)"
                demo.narrator.refused(what, exc, detail)
                return
            if exc.code != ErrorCode.LOGIN_FAILED:
                demo.narrator.surprise(what, f"refused with {exc.code}")
                return
        else:
            demo.narrator.surprise(what, "a random guess logged in")
            return
    demo.narrator.surprise(what, f"still not locked after {MAX_GUESSES} guesses")


async def recover(demo: Demo, customer: Customer) -> None:
    """The security question: a wrong answer fails, the right one sets a new password and lifts
    the login lockout."""
    who, fields = customer.label, customer.fields
    what = f"{who} starts password recovery"
    question = await demo.must(
        what, demo.identity.start_recovery(fields.username, source=demo.source)
    )
    if question.question == fields.recovery_question:
        demo.narrator.ok(what, f"{who}'s own security question, sealed to this client")
    else:
        demo.narrator.surprise(what, "another question came back")
    wrong = demo.answer(customer, secrets.token_hex(6))
    await demo.refused(f"{who} answers the question wrongly", wrong, ErrorCode.RECOVERY_FAILED)
    what = f"{who} answers rightly and sets a new password"
    recovered = await demo.must(what, demo.answer(customer, fields.recovery_answer))
    if recovered == demo.subject(customer):
        demo.narrator.ok(what, "password replaced, earlier sessions revoked")
    else:
        demo.narrator.surprise(what, "another subject was recovered")
    what = f"{who} logs in with the new password"
    await log_in(demo, customer, fields.username, customer.new_password, what, "lockout lifted, ")


async def staff_login(demo: Demo, role: str) -> str:
    account = demo.staff[role]
    what = f"{role} logs in (staff)"
    call = demo.identity.staff_login(account.username, account.password, source=demo.source)
    _, roles, session = await demo.must(what, call)
    demo.narrator.ok(what, f"roles {', '.join(roles)}")
    return session.token


async def operator_reads(demo: Demo, a: Customer, b: Customer) -> str:
    """Purpose-bound reads: allowed fields for a declared purpose, nothing without one or beyond
    what the role's work needs."""
    token = await staff_login(demo, OPERATOR)
    wanted: tuple[tuple[Customer, tuple[ReadableField, ...]], ...] = (
        (a, ("name", "email", "username")),
        (b, ("name",)),
    )
    for customer, names in wanted:
        what = f"operator reads {customer.label}: {', '.join(names)}"
        values = await demo.must(what, demo.read(token, customer, names, purpose=True))
        also = ", ".join(sorted(set(values) - {"name"}))
        shown = f"{name_of(values)} (also released: {also})" if also else name_of(values)
        demo.narrator.ok(what, f"purpose user-dealings; {shown}")
    await demo.refused(
        f"operator reads {a.label}'s name with no purpose",
        demo.read(token, a, ("name",), purpose=False),
        ErrorCode.ACCESS_DENIED,
        "a purpose is required",
    )
    await demo.refused(
        f"operator reads {a.label}: age, recovery question",
        demo.read(token, a, ("age", "recovery_question"), purpose=True),
        ErrorCode.ACCESS_DENIED,
        f"purpose user-dealings, but beyond the {OPERATOR} role",
    )
    return token


async def customer_rights(demo: Demo, a: Customer, b: Customer) -> None:
    token = demo.tokens[a.label]
    await demo.refused(
        f"{a.label} reads {b.label}'s name",
        demo.read(token, b, ("name",), purpose=False),
        ErrorCode.ACCESS_DENIED,
        "a customer reads only their own data",
    )
    what = f"{a.label} exports their own data"
    document = await demo.must(what, demo.identity.export(token, demo.subject(a)))
    fields = ", ".join(sorted(document.personal_data))
    demo.narrator.ok(what, f"{name_of(document.personal_data)}; all of it: {fields}")


async def erase(demo: Demo, customer: Customer, operator: str) -> None:
    """Only the privacy officer erases; afterwards nothing is left to read, for anyone."""
    subject = demo.subject(customer)
    await demo.refused(
        f"operator tries to erase {customer.label}",
        demo.identity.erase(operator, subject),
        ErrorCode.ACCESS_DENIED,
        f"beyond the {OPERATOR} role",
    )
    officer = await staff_login(demo, OFFICER)
    what = f"privacy-officer erases {customer.label}"
    done = await demo.must(what, demo.identity.erase(officer, subject))
    demo.narrator.ok(what, f"crypto-shredded at {done.erased_at:%H:%M:%S %Z}")
    await demo.refused(
        f"operator reads erased {customer.label}'s name",
        demo.read(operator, customer, ("name",), purpose=True),
        ErrorCode.NOT_FOUND,
        "nothing left to read",
    )
    await demo.refused(
        f"{customer.label}'s own session reads their name",
        demo.read(demo.tokens[customer.label], customer, ("name",), purpose=False),
        ErrorCode.UNAUTHORISED,
        "the account is gone",
    )


async def storefront_day(
    kafka: str,
    staff: Mapping[str, DemoAccount],
    customers: tuple[Customer, Customer],
    narrator: Narrator,
) -> None:
    a, b = customers
    config = ClientConfig(bootstrap_servers=kafka, source="/storefront/demo")
    try:
        async with RequestClient(config) as requests:
            demo = Demo(IdentityClient(requests), narrator, staff)
            await register(demo, customers)
            await log_in(demo, a, a.fields.email, a.fields.password, f"{a.label} logs in by e-mail")
            await fail_logins(demo, b)
            await recover(demo, b)
            operator = await operator_reads(demo, a, b)
            await customer_rights(demo, a, b)
            await erase(demo, a, operator)
    except BrokerUnavailable:
        raise NoStack(f"Kafka at {kafka} does not answer: is `make run` still up?") from None
    except MomentClientError as exc:
        raise DemoError(f"the demo stopped: {type(exc).__name__}: {exc}") from None


def run_demo(console: Console, environ: Mapping[str, str] | None = None) -> int:
    """Exit 0 when every step went as the policy says, 1 when one did not, 2 with no stack."""
    run_dir = current_run_dir(os.environ if environ is None else environ)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    narrator = Narrator(console)
    try:
        kafka = find_kafka(run_dir)
        staff = load_staff(run_dir)
        customers = made_up_customers()
        path = save_customers(run_dir, customers)
        console.print(f"[bold cyan]moment demo:[/] a storefront against Kafka at {kafka}")
        console.print(f"[dim]made-up customers' passwords in {escape(str(path))}[/]")
        asyncio.run(storefront_day(kafka, staff, customers, narrator))
    except NoStack as exc:
        err.print(f"[bold red]moment demo: {escape(str(exc))}[/]")
        return EXIT_NO_STACK
    except DemoError as exc:
        err.print(f"[bold red]moment demo: {escape(str(exc))}[/]")
        return EXIT_SURPRISE
    if narrator.surprises:
        console.print(f"[bold red]{narrator.surprises} step(s) went otherwise than expected[/]")
        return EXIT_SURPRISE
    console.print("[bold green]done[/] — every step went as the privacy policy says")
    return EXIT_OK
