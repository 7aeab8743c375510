"""Connectors: how agency systems get records into the hub (Python API, JSON Lines files)."""
