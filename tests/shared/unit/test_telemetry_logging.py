"""The JSON log output and the PII scrubbing filter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

from moment_telemetry import TelemetryConfig, configure_logging
from moment_telemetry.pii import PiiScrubbingFilter, is_pii_key

CANARY = "canary-pii-7f3a9c"


@dataclass
class Captured:
    logger: logging.Logger
    stream: io.StringIO

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def last(self) -> dict[str, Any]:
        return self.lines()[-1]


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def captured(restore_root: None) -> Captured:
    stream = io.StringIO()
    configure_logging(TelemetryConfig(service_name="test-svc"), stream=stream)
    return Captured(logging.getLogger("moment.test"), stream)


class Person(BaseModel):
    email: str
    person_id: int


@dataclass
class Credentials:
    username: str
    realm: str


class Contact(NamedTuple):
    phone: str
    kind: str


def test_json_line_has_the_standard_fields(captured: Captured) -> None:
    captured.logger.info("consent granted", extra={"consent_id": "c-1"})
    line = captured.last()
    assert line["level"] == "INFO"
    assert line["logger"] == "moment.test"
    assert line["message"] == "consent granted"
    assert line["service"] == "test-svc"
    assert line["consent_id"] == "c-1"
    assert line["trace_id"] is None
    assert line["span_id"] is None
    assert line["time"].endswith("+00:00")


def test_json_line_carries_the_active_trace(captured: Captured) -> None:
    tracer = TracerProvider().get_tracer(__name__)
    with tracer.start_as_current_span("work") as span:
        captured.logger.info("inside")
    context = span.get_span_context()
    line = captured.last()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_drops_top_level_pii_extras_and_keeps_others(captured: Captured) -> None:
    extra = {
        "email": CANARY,
        "Full_Name": CANARY,
        "new_password": CANARY,
        "client_secret": CANARY,
        "recovery_answer": CANARY,
        "user_id": "u-1",
        "event_type": "registered",
    }
    captured.logger.info("registered", extra=extra)
    line = captured.last()
    assert CANARY not in captured.stream.getvalue()
    for key in ("email", "Full_Name", "new_password", "client_secret", "recovery_answer"):
        assert key not in line
    assert line["user_id"] == "u-1"
    assert line["event_type"] == "registered"


def test_drops_pii_keys_in_nested_extras(captured: Captured) -> None:
    request = {
        "consent_id": "c-9",
        "subject": {"email": CANARY, "subject_id": "s-1"},
        "items": [{"token": CANARY, "purpose": "marketing"}],
    }
    captured.logger.info("request", extra={"request": request})
    assert CANARY not in captured.stream.getvalue()
    assert captured.last()["request"] == {
        "consent_id": "c-9",
        "subject": {"subject_id": "s-1"},
        "items": [{"purpose": "marketing"}],
    }


def test_drops_pii_keys_in_a_dict_passed_as_message_argument(captured: Captured) -> None:
    captured.logger.info("payload %s", {"email": CANARY, "topic": "identity.events"})
    captured.logger.info("pair %s %s", {"password": CANARY}, "second")
    captured.logger.info("named %(email)s %(topic)s", {"email": CANARY, "topic": "t"})
    captured.logger.info("only %(email)s", {"email": CANARY})
    output = captured.stream.getvalue()
    assert CANARY not in output
    first, second, third, fourth = (line["message"] for line in captured.lines())
    assert "identity.events" in first
    assert second == "pair {} second"
    assert third.startswith("named %(email)s %(topic)s [arguments withheld")
    assert fourth.startswith("only %(email)s [arguments withheld")


def test_drops_pii_fields_of_models_dataclasses_and_named_tuples(captured: Captured) -> None:
    captured.logger.info("person %s", Person(email=CANARY, person_id=7))
    captured.logger.info("creds %s", Credentials(username=CANARY, realm="staff"))
    captured.logger.info("contact %s", Contact(phone=CANARY, kind="mobile"))
    assert CANARY not in captured.stream.getvalue()
    messages = [line["message"] for line in captured.lines()]
    assert "person_id" in messages[0]
    assert "staff" in messages[1]
    assert "mobile" in messages[2]


def test_drops_pii_keys_of_a_dict_message(captured: Captured) -> None:
    captured.logger.info({"email": CANARY, "event": "erased"})
    assert CANARY not in captured.stream.getvalue()
    assert captured.last()["event"] == "erased"


def test_removes_keys_rather_than_masking_them(captured: Captured) -> None:
    captured.logger.info("x", extra={"secret_id": CANARY, "kept": 1})
    output = captured.stream.getvalue()
    assert "secret_id" not in output
    assert "*" not in output
    # Nothing hints at the value either, not even its length (the timestamp may hold any digits).
    record = json.loads(output)
    assert str(len(CANARY)) not in {str(v) for v in record.values()}


def _fail() -> None:
    raise RuntimeError("vault unavailable")


def test_logs_exception_tracebacks(captured: Captured) -> None:
    try:
        _fail()
    except RuntimeError:
        captured.logger.exception("publish failed")
    line = captured.last()
    assert line["level"] == "ERROR"
    assert "RuntimeError: vault unavailable" in line["exc_info"]


def test_quiets_noisy_libraries_and_replaces_its_own_handler(restore_root: None) -> None:
    config = TelemetryConfig(service_name="test-svc")
    first = configure_logging(config, stream=io.StringIO())
    second = configure_logging(config, stream=io.StringIO())
    root = logging.getLogger()
    assert second in root.handlers
    assert first not in root.handlers
    assert logging.getLogger("aiokafka").getEffectiveLevel() == logging.WARNING


def test_console_format_shows_the_trace(restore_root: None) -> None:
    stream = io.StringIO()
    config = TelemetryConfig(service_name="test-svc", log_format="console", log_level="debug")
    configure_logging(config, stream=stream)
    with TracerProvider().get_tracer(__name__).start_as_current_span("work") as span:
        logging.getLogger("moment.test").debug("hello %s", {"email": CANARY})
    output = stream.getvalue()
    assert "DEBUG" in output
    assert "moment.test: hello {}" in output
    assert format(span.get_span_context().trace_id, "032x") in output
    assert CANARY not in output


def test_filter_does_not_drop_records_or_touch_standard_attributes() -> None:
    record = logging.LogRecord("moment.test", logging.INFO, __file__, 1, "m", None, None)
    assert PiiScrubbingFilter().filter(record)
    assert record.name == "moment.test"


def test_extra_fields_can_be_added() -> None:
    record = logging.LogRecord("moment.test", logging.INFO, __file__, 1, "m", None, None)
    record.national_id = CANARY
    PiiScrubbingFilter(extra_fields=["National-ID"]).filter(record)
    assert not hasattr(record, "national_id")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("email", True),
        ("EMAIL", True),
        ("first-name", True),
        ("db_password_file", True),
        ("vault_secret_path", True),
        ("pepper", True),
        ("user_id", False),
        ("topic", False),
        ("message_count", False),
        (3, False),
    ],
)
def test_is_pii_key(key: object, expected: bool) -> None:
    assert is_pii_key(key) is expected
