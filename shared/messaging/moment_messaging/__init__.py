"""Kafka messaging: transactional outbox, idempotent consumers, dead letters, request/reply."""
