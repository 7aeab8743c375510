"""Agencies of the political system as they sign, send and receive: names and document-number codes.

Central bodies follow the 2025 reorganisation (merged commissions and ministries); every province and
centrally-run city has its party committee, named from the real geography ("Tỉnh ủy Đồng Tháp",
"Thành ủy Hà Nội").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from tooling.synthetic import geography


@dataclass(frozen=True, slots=True)
class Agency:
    name: str
    #: The issuer part of a document number: "TW", "VPTW", "TU", "VPCP"…
    code: str
    #: "party" bodies number documents "12-CV/VPTW"; "state" ones "12/VPCP-TH".
    style: str
    #: Set for a provincial party committee: the province it leads.
    province_code: str | None = None


CENTRAL_PARTY = (
    Agency("Ban Chấp hành Trung ương", "TW", "party"),
    Agency("Bộ Chính trị", "TW", "party"),
    Agency("Ban Bí thư", "TW", "party"),
    Agency("Văn phòng Trung ương Đảng", "VPTW", "party"),
    Agency("Ban Tổ chức Trung ương", "BTCTW", "party"),
    Agency("Ban Tuyên giáo và Dân vận Trung ương", "BTGDVTW", "party"),
    Agency("Ban Nội chính Trung ương", "BNCTW", "party"),
    Agency("Ban Chính sách, chiến lược Trung ương", "BCSCLTW", "party"),
    Agency("Ủy ban Kiểm tra Trung ương", "UBKTTW", "party"),
    Agency("Ban Đối ngoại Trung ương", "BĐNTW", "party"),
    Agency("Đảng ủy Chính phủ", "ĐUCP", "party"),
    Agency("Đảng ủy Quốc hội", "ĐUQH", "party"),
    Agency("Đảng ủy các cơ quan Đảng Trung ương", "ĐUCCQĐTW", "party"),
)

STATE = (
    Agency("Văn phòng Chủ tịch nước", "VPCTN", "state"),
    Agency("Văn phòng Quốc hội", "VPQH", "state"),
    Agency("Văn phòng Chính phủ", "VPCP", "state"),
    Agency("Bộ Khoa học và Công nghệ", "BKHCN", "state"),
    Agency("Bộ Tài chính", "BTC", "state"),
    Agency("Bộ Công Thương", "BCT", "state"),
    Agency("Bộ Giáo dục và Đào tạo", "BGDĐT", "state"),
    Agency("Bộ Y tế", "BYT", "state"),
    Agency("Bộ Tư pháp", "BTP", "state"),
    Agency("Bộ Ngoại giao", "BNG", "state"),
    Agency("Bộ Nội vụ", "BNV", "state"),
    Agency("Bộ Văn hóa, Thể thao và Du lịch", "BVHTTDL", "state"),
    Agency("Bộ Nông nghiệp và Môi trường", "BNNMT", "state"),
    Agency("Bộ Xây dựng", "BXD", "state"),
    Agency("Bộ Dân tộc và Tôn giáo", "BDTTG", "state"),
    Agency("Ngân hàng Nhà nước Việt Nam", "NHNN", "state"),
    Agency("Thanh tra Chính phủ", "TTCP", "state"),
)


@cache
def provincial_committees() -> tuple[Agency, ...]:
    """The party committee of every province ("Tỉnh ủy") and centrally-run city ("Thành ủy")."""
    out = []
    for p in geography.provinces():
        city = p.kind == "thành phố trung ương"
        place = p.name.removeprefix("Thành phố ").removeprefix("Tỉnh ")
        out.append(
            Agency(f"{'Thành ủy' if city else 'Tỉnh ủy'} {place}", "ThU" if city else "TU", "party", p.code)
        )
    return tuple(out)


def document_number(agency: Agency, serial: int, type_code: str) -> str:
    """A document number in the form the issuer uses: ``57-NQ/TW`` (party) or ``1234/VPCP-TH`` (state)."""
    if agency.style == "party":
        return f"{serial}-{type_code}/{agency.code}"
    return f"{serial}/{agency.code}-{type_code}"
