"""OpenTelemetry traces and metrics, and structured JSON logs that drop personal data."""
