"""Deterministic, streaming generator of synthetic ``citizen-feedback`` (``schemas/citizen-feedback.avsc``).

Feedback and recommendations from citizens (most) and businesses about how policies are carried out,
received by the Government Office from all 34 provinces (the monitoring system held 357 such items).
Submitters get Vietnamese names, real communes, mobile numbers and e-mail addresses; businesses a company
name and a ten-digit tax code. Later events (``changes``) carry the handling forward: RECEIVED →
PROCESSING → ANSWERED → CLOSED, with the answer and, sometimes, the submitter's satisfaction.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from collections.abc import Iterator
from typing import Any

from tooling.synthetic import agencies, geography
from tooling.synthetic.changes import check_rate, with_changes
from tooling.synthetic.people import Names, mobile
from tooling.synthetic.topics import RESOLUTIONS
from tooling.synthetic.weighted import Weighted

__all__ = ["generate_citizen_feedback"]

Record = dict[str, Any]
ID_DIGITS = 8
VIETNAM_TIME = dt.timezone(dt.timedelta(hours=7))
FIRST = dt.datetime(2025, 1, 1, tzinfo=VIETNAM_TIME)
SPAN_S = 365 * 24 * 3600

_CHANNELS = Weighted([("WEB_PORTAL", 40.0), ("MOBILE_APP", 25.0), ("HOTLINE", 15.0), ("EMAIL", 10.0),
                      ("IN_PERSON", 7.0), ("POSTAL", 3.0)])  # fmt: skip
_BUSINESS_SHARE = 0.2
#: (category, share, handling ministry, what the title says).
_CATEGORIES: tuple[tuple[str, float, str, str], ...] = (
    ("ADMINISTRATIVE_PROCEDURES", 22.0, "Văn phòng Chính phủ", "Thủ tục hành chính kéo dài"),
    ("LAND", 18.0, "Bộ Nông nghiệp và Môi trường", "Cấp giấy chứng nhận quyền sử dụng đất chậm"),
    ("BUSINESS_ENVIRONMENT", 12.0, "Bộ Tài chính", "Vướng mắc khi đăng ký kinh doanh"),
    ("INFRASTRUCTURE", 10.0, "Bộ Xây dựng", "Đường giao thông xuống cấp"),
    ("SOCIAL_WELFARE", 9.0, "Bộ Nội vụ", "Chậm chi trả chế độ chính sách"),
    ("ENVIRONMENT", 8.0, "Bộ Nông nghiệp và Môi trường", "Ô nhiễm môi trường tại khu dân cư"),
    ("HEALTH", 7.0, "Bộ Y tế", "Thanh toán bảo hiểm y tế"),
    ("EDUCATION", 6.0, "Bộ Giáo dục và Đào tạo", "Thu các khoản ngoài học phí"),
    ("CORRUPTION", 3.0, "Thanh tra Chính phủ", "Phản ánh dấu hiệu nhũng nhiễu"),
    ("OTHER", 5.0, "Văn phòng Chính phủ", "Kiến nghị khác"),
)
_CATEGORY_TABLE = Weighted((c, c[1]) for c in _CATEGORIES)
#: Which resolution a category's feedback most often names.
_RESOLUTION_OF = {"BUSINESS_ENVIRONMENT": "68-NQ/TW", "ADMINISTRATIVE_PROCEDURES": "66-NQ/TW",
                  "HEALTH": "72-NQ/TW", "EDUCATION": "71-NQ/TW", "INFRASTRUCTURE": "70-NQ/TW"}  # fmt: skip
_STATUS = Weighted([("RECEIVED", 15.0), ("PROCESSING", 35.0), ("ANSWERED", 30.0), ("CLOSED", 20.0)])
_NEXT = {"RECEIVED": "PROCESSING", "PROCESSING": "ANSWERED", "ANSWERED": "CLOSED"}
_SECTORS = ("Thương mại", "Xây dựng", "Công nghệ", "Nông sản", "Vận tải", "Du lịch", "Dịch vụ", "Thực phẩm")
_STREETS = ("Lê Lợi", "Trần Phú", "Nguyễn Huệ", "Hùng Vương", "Quang Trung", "Lý Thường Kiệt")
_FORMS = ("Công ty TNHH", "Công ty cổ phần", "Doanh nghiệp tư nhân", "Hợp tác xã")
_ANSWERS = (
    "Đã chuyển cơ quan có thẩm quyền giải quyết theo quy định.",
    "Đã hướng dẫn người phản ánh thực hiện thủ tục theo quy định.",
    "Cơ quan chức năng đã kiểm tra, xử lý và thông báo kết quả.",
    "Nội dung phản ánh đã được tiếp thu để sửa đổi quy định.",
)


def generate_citizen_feedback(count: int, seed: int, *, changes: float = 0.0) -> Iterator[Record]:
    """Yield ``count`` feedback items (ids PAKN00000001…) and about ``count * changes`` handling steps."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count > 10**ID_DIGITS - 1:
        raise ValueError(f"feedback ids would exceed {ID_DIGITS} digits")
    check_rate(changes)
    rng = random.Random(f"sharehub/citizen-feedback/{seed}")
    change_rng = random.Random(f"sharehub/citizen-feedback/changes/{seed}")
    return with_changes(_items(count, rng), changes, change_rng, _handle)


def _items(count: int, rng: random.Random) -> Iterator[Record]:
    names = Names(rng)
    communes = geography.communes()
    provinces = {p.code: p.name for p in geography.provinces()}
    for index in range(count):
        commune = rng.choice(communes)
        business = rng.random() < _BUSINESS_SHARE
        female = rng.random() < 0.45
        name = names.full_name(rng, female)
        category, _, ministry, title = _CATEGORY_TABLE.draw(rng)
        submitted = FIRST + dt.timedelta(seconds=rng.randrange(SPAN_S))
        resolution = _RESOLUTION_OF.get(category) if rng.random() < 0.5 else None
        if resolution is None and rng.random() < 0.1:
            resolution = rng.choice(RESOLUTIONS)[0]
        local = rng.random() < 0.6  # most feedback is handled by the province it comes from
        item: Record = {
            "feedback_id": f"PAKN{index + 1:0{ID_DIGITS}d}",
            "submitted_at": submitted.isoformat(timespec="seconds"),
            "channel": _CHANNELS.draw(rng),
            "submitter_type": "BUSINESS" if business else "CITIZEN",
            "submitter_name": name,
            "phone": mobile(rng) if rng.random() < 0.9 else None,
            "email": _email(rng, name) if rng.random() < (0.9 if business else 0.4) else None,
            "address": f"{_street(rng)}, {commune.name}, {provinces[commune.province_code]}",
            "business_name": (
                f"{rng.choice(_FORMS)} {rng.choice(_SECTORS)} {name.split(' ')[-1]}" if business else None
            ),
            "tax_code": f"{rng.randrange(10**9, 10**10)}" if business else None,
            "province_code": commune.province_code,
            "commune_code": commune.code,
            "category": category,
            "related_resolution": resolution,
            "title": title,
            "content": (
                f"{title} tại {commune.name}; đề nghị cơ quan có thẩm quyền xem xét, giải quyết"
                + (f" theo tinh thần Nghị quyết số {resolution}." if resolution else ".")
            ),
            "handling_agency": _local_committee(commune.province_code) if local else ministry,
            "status": "RECEIVED",
            "response_date": None,
            "response_summary": None,
            "satisfaction": None,
        }
        for _ in range(("RECEIVED", "PROCESSING", "ANSWERED", "CLOSED").index(_STATUS.draw(rng))):
            item = _handle(rng, item) or item
        yield item


def _local_committee(province_code: str) -> str:
    return next(a.name for a in agencies.provincial_committees() if a.province_code == province_code)


def _street(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"Số {rng.randint(1, 300)}, đường {rng.choice(_STREETS)}"
    return f"Thôn {rng.randint(1, 15)}"


def _email(rng: random.Random, name: str) -> str:
    parts = _ascii(name).lower().split(" ")
    return (
        f"{parts[-1]}.{parts[0]}{rng.randint(1, 999)}@{rng.choice(('gmail.com', 'yahoo.com', 'outlook.com'))}"
    )


def _ascii(text: str) -> str:
    """Vietnamese without diacritics, as e-mail addresses write it (Nguyễn Thị → Nguyen Thi)."""
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _handle(rng: random.Random, item: Record) -> Record | None:
    following = _NEXT.get(item["status"])
    if following is None:
        return None  # closed items are not handled again
    updated = {**item, "status": following}
    if following == "ANSWERED":
        submitted = dt.datetime.fromisoformat(item["submitted_at"]).date()
        updated["response_date"] = (submitted + dt.timedelta(days=rng.randint(5, 60))).isoformat()
        updated["response_summary"] = rng.choice(_ANSWERS)
    if following == "CLOSED" and rng.random() < 0.5:
        updated["satisfaction"] = rng.choices((1, 2, 3, 4, 5), weights=(5, 10, 20, 40, 25))[0]
    return updated
