"""Names of the hub's own topics (dataset topics are named by :attr:`sharehub.governance.Dataset.topic`)."""

QUARANTINE_TOPIC = "sharehub-quarantine"
