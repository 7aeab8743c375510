"""Deterministic, streaming generator of synthetic ``resolution-tasks`` (``schemas/resolution-tasks.avsc``).

The resolution-monitoring system follows about 1,800 tasks under 7 key resolutions. Tasks are spread
over the seven real resolutions of 2024-2025 (``topics.RESOLUTIONS``), the science-and-digital one
(57-NQ/TW) the largest; each is led by a ministry, a central commission or a provincial committee. The
state written first is the one at :data:`AS_OF`; progress reports follow as later events of the same
task (``changes`` per task on average, 3 by default on the command line): progress only goes up, report
dates only move on, and a completed task reports no more.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from tooling.synthetic import agencies
from tooling.synthetic.changes import check_rate, with_changes
from tooling.synthetic.people import Names
from tooling.synthetic.topics import RESOLUTIONS
from tooling.synthetic.weighted import Weighted

__all__ = ["AS_OF", "RESOLUTION_WEIGHTS", "generate_resolution_tasks"]

Record = dict[str, Any]
ID_DIGITS = 7
#: The first state of every task is as of this day; progress events come after it.
AS_OF = date(2026, 1, 1)

#: Relative number of tasks per resolution (57-NQ/TW, the broadest, has by far the most).
RESOLUTION_WEIGHTS = {"57-NQ/TW": 30.0, "59-NQ/TW": 10.0, "66-NQ/TW": 14.0, "68-NQ/TW": 14.0,
                      "70-NQ/TW": 10.0, "71-NQ/TW": 11.0, "72-NQ/TW": 11.0}  # fmt: skip
_RESOLUTIONS = Weighted((r, RESOLUTION_WEIGHTS[r[0]]) for r in RESOLUTIONS)
#: What the tasks of each resolution are about, and which ministry leads them at the centre.
_OBJECTS = {
    "57-NQ/TW": (
        "Bộ Khoa học và Công nghệ",
        (
            "hạ tầng dữ liệu quốc gia",
            "trung tâm dữ liệu dùng chung",
            "nền tảng số trong các cơ quan Đảng",
            "cơ chế thử nghiệm có kiểm soát (sandbox)",
            "quỹ đầu tư mạo hiểm cho đổi mới sáng tạo",
            "nguồn nhân lực công nghệ cao",
            "chính phủ số",
        ),
    ),
    "59-NQ/TW": (
        "Bộ Ngoại giao",
        (
            "cam kết trong các hiệp định thương mại tự do",
            "hợp tác quốc tế về quốc phòng",
            "hội nhập quốc tế về văn hóa, xã hội",
            "thu hút đầu tư nước ngoài chất lượng cao",
        ),
    ),
    "66-NQ/TW": (
        "Bộ Tư pháp",
        (
            "quy trình xây dựng luật",
            "hệ thống pháp luật về đầu tư, kinh doanh",
            "cơ sở dữ liệu quốc gia về pháp luật",
            "thi hành pháp luật ở cơ sở",
        ),
    ),
    "68-NQ/TW": (
        "Bộ Tài chính",
        (
            "hỗ trợ doanh nghiệp nhỏ và vừa",
            "tiếp cận đất đai, tín dụng cho kinh tế tư nhân",
            "cắt giảm thủ tục hành chính, điều kiện kinh doanh",
            "hộ kinh doanh chuyển lên doanh nghiệp",
        ),
    ),
    "70-NQ/TW": (
        "Bộ Công Thương",
        ("quy hoạch điện", "năng lượng tái tạo", "dự trữ xăng dầu quốc gia", "thị trường điện cạnh tranh"),
    ),
    "71-NQ/TW": (
        "Bộ Giáo dục và Đào tạo",
        (
            "chương trình giáo dục phổ thông",
            "đội ngũ nhà giáo",
            "tự chủ đại học",
            "giáo dục nghề nghiệp",
            "cơ sở vật chất trường học",
        ),
    ),
    "72-NQ/TW": (
        "Bộ Y tế",
        (
            "y tế cơ sở",
            "bảo hiểm y tế toàn dân",
            "hồ sơ sức khỏe điện tử",
            "phòng bệnh và nâng cao sức khỏe",
            "nhân lực y tế",
        ),
    ),
}
_VERBS = ("Xây dựng", "Hoàn thiện", "Triển khai", "Rà soát, sửa đổi quy định về", "Tổ chức thực hiện",
          "Đánh giá, tổng kết", "Ban hành cơ chế về", "Đẩy mạnh")  # fmt: skip
_DONE = "Đã hoàn thành."
_CENTRAL_SHARE = 0.6
_NOT_STARTED_SHARE = 0.12
_NOTES = ("Đang hoàn thiện dự thảo, xin ý kiến các cơ quan liên quan.",
          "Vướng mắc về kinh phí; đề nghị bổ sung dự toán.",
          "Đã trình cấp có thẩm quyền, chờ phê duyệt.",
          "Chậm tiến độ do phải điều chỉnh theo mô hình tổ chức mới.",
          "Đang triển khai theo kế hoạch.")  # fmt: skip


def generate_resolution_tasks(count: int, seed: int, *, changes: float = 0.0) -> Iterator[Record]:
    """Yield ``count`` tasks (ids NV0000001…) and about ``count * changes`` later progress reports."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count > 10**ID_DIGITS - 1:
        raise ValueError(f"task ids would exceed {ID_DIGITS} digits")
    check_rate(changes)
    rng = random.Random(f"sharehub/resolution-tasks/{seed}")
    change_rng = random.Random(f"sharehub/resolution-tasks/changes/{seed}")
    return with_changes(_tasks(count, rng), changes, change_rng, _report)


def _tasks(count: int, rng: random.Random) -> Iterator[Record]:
    names = Names(rng)
    provinces = agencies.provincial_committees()
    central = [a.name for a in agencies.STATE + agencies.CENTRAL_PARTY]
    for index in range(count):
        number, title, issued = _RESOLUTIONS.draw(rng)
        ministry, objects = _OBJECTS[number]
        if rng.random() < _CENTRAL_SHARE:
            lead, province_code = ministry if rng.random() < 0.6 else rng.choice(central), None
        else:
            committee = rng.choice(provinces)
            lead, province_code = committee.name, committee.province_code
        assigned = date.fromisoformat(issued) + timedelta(days=rng.randint(7, 120))
        deadline = assigned + timedelta(days=rng.choice((90, 180, 270, 365, 545, 730, 1095)))
        task: Record = {
            "task_id": f"NV{index + 1:0{ID_DIGITS}d}",
            "resolution_number": number,
            "resolution_title": title,
            "task_title": f"{rng.choice(_VERBS)} {rng.choice(objects)}",
            "lead_agency": lead,
            "coordinating_agencies": rng.sample([c for c in central if c != lead], k=rng.randint(0, 4)),
            "province_code": province_code,
            "assigned_date": assigned.isoformat(),
            "deadline": deadline.isoformat(),
            "status": "NOT_STARTED",
            "progress_percent": 0,
            "last_report_date": None,
            "report_note": None,
            "responsible_officer": names.full_name(rng, rng.random() < 0.35),
            "budget_billion_vnd": round(rng.lognormvariate(2.5, 1.2), 1) if rng.random() < 0.4 else None,
        }
        if assigned < AS_OF and rng.random() > _NOT_STARTED_SHARE:
            # Progress so far roughly follows the time elapsed towards the deadline.
            elapsed = (AS_OF - assigned).days / max(1, (deadline - assigned).days)
            progress = max(5, min(100, round(100 * elapsed * rng.uniform(0.5, 1.4) / 5) * 5))
            reported = assigned + timedelta(days=rng.randint(1, max(1, (AS_OF - assigned).days - 1)))
            task.update(
                progress_percent=progress,
                last_report_date=reported.isoformat(),
                report_note=_DONE if progress == 100 else rng.choice(_NOTES),
            )
        task["status"] = _status(task, AS_OF)
        yield task


def _status(task: Record, today: date) -> str:
    if task["progress_percent"] >= 100:
        return "COMPLETED"
    if date.fromisoformat(task["deadline"]) < today:
        return "OVERDUE"
    return "IN_PROGRESS" if task["progress_percent"] > 0 else "NOT_STARTED"


def _report(rng: random.Random, task: Record) -> Record | None:
    if task["status"] == "COMPLETED":
        return None
    last = date.fromisoformat(task["last_report_date"]) if task["last_report_date"] else AS_OF
    reported = max(last, AS_OF) + timedelta(days=rng.randint(7, 45))
    progress = min(100, task["progress_percent"] + rng.choice((5, 10, 10, 15, 20, 25)))
    updated = {
        **task,
        "progress_percent": progress,
        "last_report_date": reported.isoformat(),
        "report_note": _DONE if progress == 100 else rng.choice(_NOTES),
    }
    updated["status"] = _status(updated, reported)
    return updated
