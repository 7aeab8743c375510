"""The local development Kafka broker (KRaft, single node) behind ``sharehub kafka start|stop|status``.

``broker.py`` manages the broker process and its state; ``jars.py`` fetches its jars into the cache.
"""

from sharehub.errors import BrokerStartError, BrokerStopError, JarFetchError, LocalKafkaError, PortInUseError
from tooling.kafka_local.broker import BrokerStatus, LocalKafka, broker_answers
from tooling.kafka_local.jars import KAFKA_VERSION, ensure_jars

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
