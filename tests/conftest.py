"""Root fixtures: real Tansu, OpenBao and PostgreSQL, started and stopped by the fixtures
themselves.
"""

pytest_plugins = [
    "tests.support.infra",
    "tests.support.kafka",
    "tests.support.vault",
    "tests.support.postgres",
    "tests.support.suite",
]
