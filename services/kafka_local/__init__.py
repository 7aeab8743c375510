"""The local development Kafka broker (KRaft, single node) behind ``sharehub kafka start|stop|status``.

``broker.py`` manages the broker process and its state; ``jars.py`` fetches its jars into the cache.
"""

from services.kafka_local.broker import (
    BrokerStartError,
    BrokerStatus,
    BrokerStopError,
    LocalKafka,
    PortInUseError,
    broker_answers,
)
from services.kafka_local.jars import KAFKA_VERSION, JarFetchError, LocalKafkaError, ensure_jars

__all__ = [
    "KAFKA_VERSION",
    "BrokerStartError",
    "BrokerStatus",
    "BrokerStopError",
    "JarFetchError",
    "LocalKafka",
    "LocalKafkaError",
    "PortInUseError",
    "broker_answers",
    "ensure_jars",
]
