"""Kafka messaging: transactional outbox, idempotent consumers, dead-letter topics, request/reply."""
