"""Projection: from the log to one read model per consumer agency (verify → decrypt → apply agreements)."""
