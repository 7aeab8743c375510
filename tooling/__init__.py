"""Tools for developing, demonstrating and testing the hub, not part of a deployment's data path: the
local Kafka broker (``sharehub kafka``) and the synthetic-data generators (``sharehub generate``)."""
