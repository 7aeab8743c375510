"""Avro schemas of sharehub: the envelope, the quarantine record and one schema per dataset.

The ``.avsc`` files are package data so that an installed hub finds them without the source tree.
"""
