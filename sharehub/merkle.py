"""Merkle trees over a batch of events (RFC 9162, section 2.1), so one signature can cover many events.

Leaves are ``SHA-256(0x00 || event body)``, inner nodes ``SHA-256(0x01 || left || right)``: the prefixes keep
a leaf from ever passing for a node. Each event carries its inclusion path, so any single event can be
verified on its own against the signed root.
"""

from __future__ import annotations

import hashlib


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


def root_from_path(leaf: bytes, index: int, size: int, siblings: list[bytes]) -> bytes | None:
    """The root ``leaf`` at ``index`` of a tree of ``size`` leaves proves; None if the path cannot fit."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in siblings:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None
