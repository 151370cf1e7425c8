"""Versioned wire contracts: CloudEvents over Kafka, message models, topics and error replies."""
