"""The AsyncAPI documents in docs/asyncapi are generated from the code; a stale one fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from moment_contracts.catalogue import IDENTITY_REPLIES, TOPIC_MESSAGES
from moment_devstack.apidocs import stale_documents

DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi"


def test_asyncapi_documents_match_the_code() -> None:
    stale = stale_documents(DOCS)
    assert not stale, f"regenerate with `make asyncapi`: {[p.name for p in stale]}"


def test_every_reply_is_documented() -> None:
    documents = (DOCS / "identity.json").read_text(encoding="utf-8")
    for model in IDENTITY_REPLIES:
        assert model.ce_type in documents, f"{model.ce_type} missing from identity's AsyncAPI"


@pytest.mark.parametrize("topic", sorted(TOPIC_MESSAGES))
def test_every_catalogued_message_is_documented(topic: str) -> None:
    documents = "".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.json"))
    for model in TOPIC_MESSAGES[topic]:
        assert model.__name__ in documents, f"{model.ce_type} missing from the AsyncAPI docs"
