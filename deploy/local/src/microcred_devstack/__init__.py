"""microcred_devstack: the local stack (Kafka, PostgreSQL, the four services) without Docker.

Python API for tests and tools; the CLI is `python -m microcred_devstack`.
"""

from .config import SERVICES, default_state_dir, topic_lists
from .kafka import (
    KAFKA_VERSION,
    KafkaError,
    KafkaNode,
    create_topics,
    create_topics_sync,
    ensure_kafka_jars,
)
from .kafka_sasl import Operation, Resource, add_acls, create_scram_user, sasl_client_options
from .postgres import (
    PgHandle,
    PostgresError,
    database_url,
    ensure_databases,
    ensure_databases_async,
    start_postgres,
)
from .processes import ServiceError, ServiceProcess, free_port, port_open
from .stack import Stack

__all__ = [
    "KAFKA_VERSION",
    "KafkaError",
    "KafkaNode",
    "create_topics",
    "create_topics_sync",
    "ensure_kafka_jars",
    "PgHandle",
    "PostgresError",
    "database_url",
    "ensure_databases",
    "ensure_databases_async",
    "start_postgres",
    "ServiceError",
    "ServiceProcess",
    "free_port",
    "port_open",
    "Operation",
    "Resource",
    "add_acls",
    "create_scram_user",
    "sasl_client_options",
    "SERVICES",
    "Stack",
    "default_state_dir",
    "topic_lists",
]
