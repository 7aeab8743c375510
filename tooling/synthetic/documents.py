"""Deterministic, streaming generator of synthetic ``documents`` records (``schemas/documents.avsc``).

Metadata of the documents the operational management system sends and receives: numbers in the issuers'
own styles, types, urgency and secrecy levels at plausible shares (assumed, the real shares are not
public: most documents are internal letters, 1 in 50 is top-secret), senders and receivers from the real
agencies and the 34 provincial committees. Titles and summaries are assembled from stock phrases: there
is nothing secret in them. Later events move a document through its handling (RECEIVED → PROCESSING →
COMPLETED → ARCHIVED).

Streaming: the only state is one serial counter per (issuer, year, type), bounded by the agency list.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from tooling.synthetic import agencies
from tooling.synthetic.changes import check_rate, with_changes
from tooling.synthetic.people import Names
from tooling.synthetic.topics import RESOLUTIONS, SUBJECTS
from tooling.synthetic.weighted import Weighted

__all__ = ["CLASSIFICATION_SHARES", "generate_documents"]

Record = dict[str, Any]
ID_DIGITS = 10
FIRST_DAY = date(2024, 1, 1).toordinal()
LAST_DAY = date(2025, 12, 31).toordinal()

#: Percent of documents at each secrecy level (assumed; see the module docstring).
CLASSIFICATION_SHARES = {
    "PUBLIC": 20.0,
    "INTERNAL": 50.0,
    "CONFIDENTIAL": 20.0,
    "SECRET": 8.0,
    "TOP_SECRET": 2.0,
}
_CLASSIFICATIONS = Weighted(CLASSIFICATION_SHARES.items())
_URGENCY = Weighted([("NORMAL", 80.0), ("URGENT", 14.0), ("VERY_URGENT", 5.0), ("EXPRESS", 1.0)])
#: (type, share in percent, number code, title prefix, asks the receivers to act).
_TYPES: tuple[tuple[str, float, str, str, bool], ...] = (
    ("OFFICIAL_LETTER", 38.0, "CV", "V/v", True),
    ("REPORT", 15.0, "BC", "Báo cáo", False),
    ("NOTICE", 12.0, "TB", "Thông báo", False),
    ("PLAN", 9.0, "KH", "Kế hoạch", True),
    ("DECISION", 8.0, "QĐ", "Quyết định", True),
    ("GUIDANCE", 5.0, "HD", "Hướng dẫn", True),
    ("SUBMISSION", 4.0, "TTr", "Tờ trình", True),
    ("CONCLUSION", 3.5, "KL", "Kết luận", True),
    ("DIRECTIVE", 2.5, "CT", "Chỉ thị", True),
    ("RESOLUTION", 2.0, "NQ", "Nghị quyết", True),
    ("REGULATION", 1.0, "QĐi", "Quy định", True),
)
_TYPE_TABLE = Weighted((t, t[1]) for t in _TYPES)
#: Central Party bodies send most documents; provinces and state agencies the rest.
_SENDER_GROUPS = Weighted([("central", 45.0), ("province", 35.0), ("state", 20.0)])
_SIGNER_TITLES = {
    "central": ("Chánh Văn phòng", "Phó Chánh Văn phòng", "Trưởng ban", "Phó Trưởng ban", "T/M Ban Bí thư"),
    "province": ("Bí thư", "Phó Bí thư Thường trực", "Phó Bí thư", "Chánh Văn phòng"),
    "state": ("Bộ trưởng", "Thứ trưởng", "Chủ nhiệm", "Phó Chủ nhiệm", "Chánh Văn phòng"),
}
_STATUS = Weighted([("RECEIVED", 35.0), ("PROCESSING", 30.0), ("COMPLETED", 25.0), ("ARCHIVED", 10.0)])
_NEXT_STATUS = {"RECEIVED": "PROCESSING", "PROCESSING": "COMPLETED", "COMPLETED": "ARCHIVED"}
_ACTIONS = (
    "triển khai thực hiện",
    "báo cáo kết quả",
    "cho ý kiến",
    "phối hợp thực hiện",
    "tổng hợp, đề xuất",
)


def generate_documents(count: int, seed: int, *, changes: float = 0.0) -> Iterator[Record]:
    """Yield ``count`` documents (ids VB0000000001…) and about ``count * changes`` later status changes."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count > 10**ID_DIGITS - 1:
        raise ValueError(f"document ids would exceed {ID_DIGITS} digits")
    check_rate(changes)
    rng = random.Random(f"sharehub/documents/{seed}")
    change_rng = random.Random(f"sharehub/documents/changes/{seed}")
    return with_changes(_documents(count, rng), changes, change_rng, _advance)


def _documents(count: int, rng: random.Random) -> Iterator[Record]:
    names = Names(rng)
    groups = {
        "central": agencies.CENTRAL_PARTY,
        "province": agencies.provincial_committees(),
        "state": agencies.STATE,
    }
    everyone = [a for group in groups.values() for a in group]
    serials: dict[tuple[str, int, str], int] = {}
    for index in range(count):
        group = _SENDER_GROUPS.draw(rng)
        sender = rng.choice(groups[group])
        doc_type, _, type_code, prefix, asks_action = _TYPE_TABLE.draw(rng)
        issued = date.fromordinal(rng.randint(FIRST_DAY, LAST_DAY))
        serial_key = (sender.name, issued.year, type_code)
        serials[serial_key] = serial = serials.get(serial_key, rng.randint(1, 40)) + rng.randint(1, 6)
        received = issued + timedelta(days=min(int(rng.expovariate(0.8)), 10))
        status = _STATUS.draw(rng)
        subject = rng.choice(SUBJECTS)
        receivers = rng.sample([a.name for a in everyone if a.name != sender.name], k=rng.randint(1, 6))
        female = rng.random() < 0.3
        yield {
            "document_id": f"VB{index + 1:0{ID_DIGITS}d}",
            "document_number": agencies.document_number(sender, serial, type_code),
            "document_type": doc_type,
            "document_classification": _CLASSIFICATIONS.draw(rng),
            "urgency": _URGENCY.draw(rng),
            "title": _title(rng, prefix, subject),
            "summary": _summary(rng, subject),
            "sending_agency": sender.name,
            "sending_province_code": sender.province_code,
            "receiving_agencies": receivers,
            "signer_name": names.full_name(rng, female),
            "signer_title": rng.choice(_SIGNER_TITLES[group]),
            "issued_date": issued.isoformat(),
            "received_date": received.isoformat(),
            "handling_deadline": (
                (received + timedelta(days=rng.randint(7, 60))).isoformat() if asks_action else None
            ),
            "pages": max(1, int(rng.lognormvariate(1.3, 0.8))),
            "attachments": min(int(rng.expovariate(1.2)), 8),
            "status": status,
            "status_date": (received + timedelta(days=_days_in(rng, status))).isoformat(),
        }


def _days_in(rng: random.Random, status: str) -> int:
    steps = ("RECEIVED", "PROCESSING", "COMPLETED", "ARCHIVED").index(status)
    return sum(rng.randint(1, 20) for _ in range(steps))


def _title(rng: random.Random, prefix: str, subject: str) -> str:
    if prefix == "V/v" and rng.random() < 0.3:
        number, _, _ = rng.choice(RESOLUTIONS)
        return f"V/v triển khai thực hiện Nghị quyết số {number}"
    return f"V/v {subject}" if prefix == "V/v" else f"{prefix} về {subject}"


def _summary(rng: random.Random, subject: str) -> str:
    points = rng.randint(2, 6)
    return (
        f"Văn bản gồm {points} nội dung chính về {subject}; đề nghị các cơ quan, đơn vị "
        f"{rng.choice(_ACTIONS)} theo chức năng, nhiệm vụ được giao."
    )


def _advance(rng: random.Random, document: Record) -> Record | None:
    following = _NEXT_STATUS.get(document["status"])
    if following is None:
        return None  # archived documents do not move again
    day = date.fromisoformat(document["status_date"]) + timedelta(days=rng.randint(1, 30))
    return {**document, "status": following, "status_date": day.isoformat()}
