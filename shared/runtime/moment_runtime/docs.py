"""AsyncAPI documents, generated from the same broker objects the services run.

Events leave through the outbox relay, which FastStream doesn't see, so each service also declares
documentation-only publishers for the topics it writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NoReturn

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from moment_contracts.base import Contract
from moment_messaging.config import KafkaConfig
from moment_messaging.deadletter import DeadLetterPolicy
from moment_messaging.runtime import build_broker
from moment_runtime.asyncapi_wire import complete


def declare_publications(
    broker: KafkaBroker, publications: dict[str, tuple[type[Contract], ...]]
) -> None:
    for topic, models in publications.items():
        for model in models:
            broker.publisher(
                topic,
                title=f"{topic}:{model.ce_type}",
                description=(
                    f"{model.__doc__ or model.__name__} (ce_type {model.ce_type}, via the outbox)"
                ),
                schema=model,
            )


def asyncapi_json(broker: KafkaBroker, service: str) -> str:
    spec = AsyncAPI(
        broker,
        title=f"Moment {service} service",
        version="1.0.0",
        description=(
            f"Kafka interface of the Moment {service} service. Every message is a CloudEvents 1.0 "
            "event in Kafka binary mode; see docs/contract.md."
        ),
        schema_version="3.0.0",
    )
    document = complete(spec.to_specification().to_jsonable())
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def document(
    service: str,
    register: Callable[[KafkaBroker, KafkaConfig], None],
    publications: dict[str, tuple[type[Contract], ...]],
) -> str:
    """Build the service's broker exactly as at run time, without connecting, and describe it."""
    config = KafkaConfig(client_id=service)
    broker, _ = build_broker(
        config, source=f"/moment/{service}", policy=DeadLetterPolicy(config, service)
    )
    register(broker, config)
    declare_publications(broker, publications)
    return asyncapi_json(broker, service)


def not_at_docs_time() -> NoReturn:
    raise RuntimeError("handlers are not callable while generating documentation")
