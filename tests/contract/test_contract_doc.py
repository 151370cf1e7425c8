"""docs/contract.md's topic table lists exactly the topics the services create, each with the
message types the catalogue puts on it: a client written from the page alone sees every topic."""

from __future__ import annotations

import re
from pathlib import Path

from moment_contracts import catalogue, topics
from moment_contracts.audit import PersonalDataAccessed

DOC = Path(__file__).resolve().parents[2] / "docs" / "contract.md"
_IDENTITY_PREFIX = "moment.identity."


def _topic_rows() -> dict[str, str]:
    """Each topic named in the first column of the '## Topics' table -> its whole row."""
    section = DOC.read_text().split("\n## Topics\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split(" | ", 1)[0]
        for name in re.findall(r"`([^`]+)`", first):
            rows[name] = line
    return rows


def test_the_topic_table_lists_exactly_the_core_topics() -> None:
    listed = set(_topic_rows()) - {f"{topics.REPLY_PREFIX}<instance>"}
    assert listed == {spec.name for spec in topics.CORE_TOPICS}


def test_the_topic_table_names_every_message_the_catalogue_puts_on_a_topic() -> None:
    rows = _topic_rows()
    missing = [
        f"{topic}: {model.ce_type}"
        for topic, models in catalogue.TOPIC_MESSAGES.items()
        for model in models
        if model.ce_type.removeprefix(_IDENTITY_PREFIX) not in rows[topic]
    ]
    assert missing == []


def test_the_page_documents_every_field_of_audit_events() -> None:
    section = DOC.read_text().split("### `audit.events`", 1)[1].split("\n### ", 1)[0]
    assert [f for f in PersonalDataAccessed.model_fields if f"| `{f}` |" not in section] == []
