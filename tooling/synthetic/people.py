"""Vietnamese people for synthetic records: full names at realistic frequencies, mobile numbers.

Every draw takes the caller's ``random.Random``; Faker('vi_VN') is used once per run to fill the
given-name pools (it is slow), seeded from that same generator, so output depends only on the seed.
"""

from __future__ import annotations

import random

from faker import Faker

from tooling.synthetic.weighted import Weighted

#: Mobile prefixes by network, weighted by rough market share (Viettel, VinaPhone, MobiFone, others).
PHONE_PREFIXES = Weighted(
    [
        (p, 50.0 / 13)
        for p in ("032", "033", "034", "035", "036", "037", "038", "039", "086", "096", "097", "098", "087")
    ]
    + [(p, 25.0 / 8) for p in ("081", "082", "083", "084", "085", "088", "091", "094")]
    + [(p, 20.0 / 8) for p in ("070", "076", "077", "078", "079", "089", "090", "093")]
    + [(p, 5.0 / 7) for p in ("052", "055", "056", "058", "059", "092", "099")]
)


#: Family names with their approximate frequency (percent). Faker vi_VN draws only ten families,
#: uniformly; this table covers them and the other common ones at realistic rates.
FAMILY_NAMES = Weighted(
    [
        ("Nguyễn", 38.0),
        ("Trần", 11.0),
        ("Lê", 9.5),
        ("Phạm", 7.0),
        ("Phan", 4.5),
        ("Hoàng", 3.0),
        ("Huỳnh", 2.1),
        ("Vũ", 2.0),
        ("Võ", 1.9),
        ("Đặng", 2.1),
        ("Bùi", 2.0),
        ("Đỗ", 1.4),
        ("Hồ", 1.3),
        ("Ngô", 1.3),
        ("Dương", 1.0),
        ("Lý", 0.5),
        ("Mai", 0.5),
        ("Đinh", 0.6),
        ("Trương", 0.5),
        ("Đào", 0.4),
        ("Hà", 0.4),
        ("Lương", 0.3),
        ("Cao", 0.3),
        ("Tô", 0.2),
        ("Lâm", 0.2),
    ]
)
#: Middle names carry gender in Vietnamese ("Văn" male, "Thị" female); Faker vi_VN's are not gendered.
MIDDLE_NAMES_MALE = Weighted(
    [
        ("Văn", 40.0),
        ("Đức", 8.0),
        ("Hữu", 7.0),
        ("Minh", 7.0),
        ("Quang", 6.0),
        ("Đình", 5.0),
        ("Công", 4.0),
        ("Thanh", 4.0),
        ("Xuân", 4.0),
        ("Thế", 3.0),
        ("Tiến", 3.0),
        ("Trọng", 3.0),
        ("Duy", 3.0),
        ("Ngọc", 3.0),
        ("Mạnh", 2.0),
        ("Bá", 2.0),
        ("Anh", 2.0),
    ]
)
MIDDLE_NAMES_FEMALE = Weighted(
    [
        ("Thị", 55.0),
        ("Ngọc", 6.0),
        ("Thu", 5.0),
        ("Thanh", 5.0),
        ("Kim", 3.0),
        ("Minh", 3.0),
        ("Hồng", 3.0),
        ("Phương", 3.0),
        ("Thị Thu", 3.0),
        ("Thị Ngọc", 3.0),
        ("Thị Thanh", 3.0),
        ("Mai", 2.0),
        ("Thúy", 2.0),
        ("Bích", 2.0),
        ("Thị Kim", 2.0),
    ]
)
#: Given names come from Faker; a pool this large reproduces its vocabulary while keeping Faker (slow)
#: out of the per-record loop.
_GIVEN_NAME_POOL_SIZE = 512
_UNISEX_GIVEN_NAME_SHARE = 0.2


def given_name_pools(rng: random.Random) -> tuple[tuple[str, ...], tuple[str, ...]]:
    fake = Faker("vi_VN")
    fake.seed_instance(rng.getrandbits(64))

    def pool(gendered: str) -> tuple[str, ...]:
        draw_gendered = getattr(fake, gendered)
        return tuple(
            fake.first_name_unisex() if rng.random() < _UNISEX_GIVEN_NAME_SHARE else draw_gendered()
            for _ in range(_GIVEN_NAME_POOL_SIZE)
        )

    return pool("first_name_male"), pool("first_name_female")


class Names:
    """Full names of one run: family and gendered middle names by frequency, given names from Faker."""

    def __init__(self, rng: random.Random) -> None:
        self.male_given, self.female_given = given_name_pools(rng)

    def full_name(self, rng: random.Random, female: bool) -> str:
        if female:
            return f"{FAMILY_NAMES.draw(rng)} {MIDDLE_NAMES_FEMALE.draw(rng)} {rng.choice(self.female_given)}"
        return f"{FAMILY_NAMES.draw(rng)} {MIDDLE_NAMES_MALE.draw(rng)} {rng.choice(self.male_given)}"


def mobile(rng: random.Random) -> str:
    """A Vietnamese mobile number (ten digits, a real network prefix)."""
    return f"{PHONE_PREFIXES.draw(rng)}{rng.randrange(10**7):07d}"
