"""Synthetic datasets for demos, load tests and development, reproducible from a seed.

Generators yield records lazily in the JSON Lines form ``sharehub publish`` reads; ``write_jsonl`` streams
them to a file or stdout. Geography is the real 2025 structure of Viet Nam (34 provinces, 3,321 communes).
"""

from connectors.synthetic.geography import Commune, Province, communes, province_of, provinces
from connectors.synthetic.jsonl import write_jsonl
from connectors.synthetic.party_members import generate_party_members

__all__ = [
    "Commune",
    "Province",
    "communes",
    "generate_party_members",
    "province_of",
    "provinces",
    "write_jsonl",
]
