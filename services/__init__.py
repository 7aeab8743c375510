"""Running parts of sharehub: the command line, the query API, the audit, the local broker."""
