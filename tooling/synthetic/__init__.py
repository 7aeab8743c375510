"""Synthetic datasets for demos, load tests and development, reproducible from a seed.

Generators yield records lazily in the JSON Lines form ``sharehub publish`` reads; ``write_jsonl`` streams
them to a file or stdout. Geography is the real 2025 structure of Viet Nam (34 provinces, 3,321 communes).
Every generator takes ``changes``: later full records of earlier ones (same key, later state),
interleaved in constant memory (see :mod:`tooling.synthetic.changes`).
"""

from tooling.synthetic.citizen_feedback import generate_citizen_feedback
from tooling.synthetic.documents import generate_documents
from tooling.synthetic.geography import Commune, Province, communes, province_of, provinces
from tooling.synthetic.handbook_activities import generate_handbook_activities
from tooling.synthetic.handbook_attendance import generate_handbook_attendance
from tooling.synthetic.jsonl import write_jsonl
from tooling.synthetic.party_members import generate_party_members
from tooling.synthetic.resolution_tasks import generate_resolution_tasks

__all__ = [
    "Commune",
    "Province",
    "communes",
    "generate_citizen_feedback",
    "generate_documents",
    "generate_handbook_activities",
    "generate_handbook_attendance",
    "generate_party_members",
    "generate_resolution_tasks",
    "province_of",
    "provinces",
    "write_jsonl",
]
