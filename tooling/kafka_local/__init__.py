"""The local development Kafka (KRaft; one node or a cluster of three): ``sharehub kafka start|stop|status``.

``broker.py`` manages one node's process and state; ``cluster.py`` the nodes of a cluster together;
``layout.py`` their ports and replication; ``jars.py`` fetches the jars into the cache.
"""

from sharehub.errors import BrokerStartError, BrokerStopError, JarFetchError, LocalKafkaError, PortInUseError
from tooling.kafka_local.broker import BrokerStatus, LocalKafka, broker_answers
from tooling.kafka_local.cluster import LocalKafkaCluster, recorded_size
from tooling.kafka_local.jars import KAFKA_VERSION, ensure_jars

__all__ = [
    "KAFKA_VERSION",
    "BrokerStartError",
    "BrokerStatus",
    "BrokerStopError",
    "JarFetchError",
    "LocalKafka",
    "LocalKafkaCluster",
    "LocalKafkaError",
    "PortInUseError",
    "broker_answers",
    "ensure_jars",
    "recorded_size",
]
