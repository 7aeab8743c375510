"""Merkle trees over a batch of events (RFC 9162, section 2.1), so one signature can cover many events.

Leaves are ``SHA-256(0x00 || event body)``, inner nodes ``SHA-256(0x01 || left || right)``: the prefixes keep
a leaf from ever passing for a node. Each event carries its inclusion path, so any single event can be
verified on its own against the signed root.
"""

from __future__ import annotations

import hashlib
import itertools


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root(leaves: list[bytes]) -> bytes:
    """Merkle tree hash of a non-empty list of leaf hashes."""
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def path(leaves: list[bytes], index: int) -> list[bytes]:
    """Inclusion path of leaf ``index``: the sibling hashes from the leaf up to the root."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*path(leaves[:k], index), root(leaves[k:])]
    return [*path(leaves[k:], index - k), root(leaves[:k])]


def tree(leaves: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root and every leaf's inclusion path at once, in O(n log n) (what signing a batch needs)."""
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    if len(leaves) == 1:
        return leaves[0], [[]]
    k = _split(len(leaves))
    left, left_paths = tree(leaves[:k])
    right, right_paths = tree(leaves[k:])
    return node_hash(left, right), [p + [right] for p in left_paths] + [p + [left] for p in right_paths]


#: A step up a path: the node reached, its place (index and last index at its level), the siblings above.
Step = tuple[bytes, int, int, tuple[bytes, ...]]


class _NotFound:
    """What :meth:`SubtreeMemo.get` answers for a step never taken (None is an answer: the path misfits)."""


NOT_FOUND = _NotFound()


class SubtreeMemo:
    """What :func:`root_from_path` found before, from each step of each path it followed: the events of one
    batch share the upper part of their paths, so the next event of a batch hashes up to the first step
    another event took, not to the root. Bounded: when full, the older half goes."""

    def __init__(self, capacity: int = 65_536) -> None:
        self._capacity = capacity
        self._found: dict[Step, bytes | None] = {}

    def __len__(self) -> int:
        return len(self._found)

    def get(self, step: Step) -> bytes | None | _NotFound:
        return self._found.get(step, NOT_FOUND)

    def remember(self, steps: list[Step], root: bytes | None) -> None:
        found = self._found
        for step in steps:
            found[step] = root
        if len(found) > self._capacity:
            # The older half goes at once: deleting the oldest entry one at a time leaves holes at the front
            # of the dict that every next(iter(...)) walks over, a cost that grows with each eviction.
            keep = self._capacity // 2
            self._found = dict(itertools.islice(found.items(), len(found) - keep, None))


def root_from_path(
    leaf: bytes, index: int, size: int, siblings: list[bytes], memo: SubtreeMemo | None = None
) -> bytes | None:
    """The root ``leaf`` at ``index`` of a tree of ``size`` leaves proves; None if the path cannot fit.

    With ``memo``, a step taken before (the same node at the same place, the same siblings above it) gives
    the result it led to then: the answer is the one the whole path gives, in fewer hashes."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    steps: list[Step] = []
    for i, p in enumerate(siblings):
        if sn == 0:
            root = None
            break
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
        if memo is not None:
            # Everything from here on depends on this node, its place and the siblings above it alone.
            step = (r, fn, sn, tuple(siblings[i + 1 :]))
            found = memo.get(step)
            if not isinstance(found, _NotFound):
                root = found
                break
            steps.append(step)
    else:
        root = r if sn == 0 else None
    if memo is not None:
        memo.remember(steps, root)
    return root
