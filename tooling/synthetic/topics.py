"""What Party and state documents are about: the key resolutions of 2024-2025 and stock policy subjects."""

from __future__ import annotations

#: (number, title, date issued): the key Politburo resolutions whose implementation is monitored.
RESOLUTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "57-NQ/TW",
        "Về đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số quốc gia",
        "2024-12-22",
    ),
    ("59-NQ/TW", "Về hội nhập quốc tế trong tình hình mới", "2025-01-24"),
    (
        "66-NQ/TW",
        "Về đổi mới công tác xây dựng và thi hành pháp luật đáp ứng yêu cầu phát triển đất nước "
        "trong kỷ nguyên mới",
        "2025-04-30",
    ),
    ("68-NQ/TW", "Về phát triển kinh tế tư nhân", "2025-05-04"),
    ("70-NQ/TW", "Về bảo đảm an ninh năng lượng quốc gia đến năm 2030, tầm nhìn đến năm 2045", "2025-08-20"),
    ("71-NQ/TW", "Về đột phá phát triển giáo dục và đào tạo", "2025-08-22"),
    (
        "72-NQ/TW",
        "Về một số giải pháp mang tính đột phá, tăng cường bảo vệ, chăm sóc và nâng cao sức khỏe Nhân dân",
        "2025-09-09",
    ),
)

#: Subjects of everyday documents ("V/v …", "Báo cáo về …").
SUBJECTS: tuple[str, ...] = (
    "công tác cán bộ",
    "sắp xếp tổ chức bộ máy của hệ thống chính trị",
    "chuyển đổi số trong các cơ quan Đảng",
    "kết nối, chia sẻ dữ liệu giữa các cơ quan Đảng",
    "công tác kiểm tra, giám sát",
    "công tác phát triển đảng viên",
    "tổng kết công tác năm và phương hướng nhiệm vụ năm tới",
    "chuẩn bị đại hội đảng bộ các cấp",
    "công tác bảo vệ chính trị nội bộ",
    "phòng, chống tham nhũng, lãng phí, tiêu cực",
    "công tác dân vận",
    "bảo đảm an toàn, an ninh mạng",
    "quản lý hồ sơ đảng viên",
    "thực hiện chế độ, chính sách đối với cán bộ",
    "công tác thi đua, khen thưởng",
    "công tác đối ngoại",
    "phân bổ, sử dụng kinh phí hoạt động",
    "công tác tuyên truyền",
    "tiếp công dân, giải quyết khiếu nại, tố cáo",
    "cải cách thủ tục hành chính",
)
