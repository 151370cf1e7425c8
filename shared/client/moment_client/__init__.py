"""The storefront client: typed request/reply with the Moment services over Kafka."""
