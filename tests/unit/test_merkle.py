"""Merkle inclusion proofs: every leaf of every tree size proves its root, and nothing else does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sharehub.merkle import SubtreeMemo, leaf_hash, node_hash, path, root, root_from_path, tree


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_every_leaf_of_every_small_tree_proves_the_root() -> None:
    for n in range(1, 40):
        tree = leaves(n)
        expected = root(tree)
        for i in range(n):
            assert root_from_path(tree[i], i, n, path(tree, i)) == expected, (n, i)


def test_known_shapes() -> None:
    a, b, c = leaves(3)
    assert root([a]) == a
    assert root([a, b]) == node_hash(a, b)
    assert root([a, b, c]) == node_hash(node_hash(a, b), c)  # RFC 9162: split at the largest power of two
    assert path([a, b, c], 2) == [node_hash(a, b)]


@given(n=st.integers(2, 300), data=st.data())
def test_a_wrong_index_size_leaf_or_sibling_proves_nothing(n: int, data: st.DataObject) -> None:
    tree = leaves(n)
    expected = root(tree)
    i = data.draw(st.integers(0, n - 1))
    proof = path(tree, i)
    other = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
    assert root_from_path(tree[i], other, n, proof) != expected
    assert root_from_path(tree[other], i, n, proof) != expected
    # The size is not bound by the path alone (leaf 0 of 3 and of 4 can share one): the envelope signs the
    # size together with the root, and a changed size fails that signature.
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bent = [*proof[:k], bytes(32), *proof[k + 1 :]]
        assert root_from_path(tree[i], i, n, bent) != expected
    assert root_from_path(tree[i], n, n, proof) is None


def test_all_paths_at_once_equal_one_path_at_a_time() -> None:
    for n in (1, 2, 3, 7, 8, 9, 100):
        leaves_ = leaves(n)
        top, paths = tree(leaves_)
        assert top == root(leaves_)
        assert paths == [path(leaves_, i) for i in range(n)]


def test_a_memo_spares_the_hashes_the_paths_of_a_batch_share() -> None:
    tree_ = leaves(256)
    memo = SubtreeMemo()
    expected = root(tree_)
    for i in range(256):
        assert root_from_path(tree_[i], i, 256, path(tree_, i), memo) == expected
    # One entry per inner node (255): each path stops at the first node another path reached before it.
    assert len(memo) == 255


@given(
    n=st.integers(1, 70),
    proofs=st.lists(
        st.tuples(st.integers(0, 69), st.integers(0, 69), st.integers(-1, 8), st.integers(1, 70)), max_size=40
    ),
)
def test_with_a_memo_every_path_gives_what_it_gives_alone(n: int, proofs: list[tuple[int, ...]]) -> None:
    """Honest and bent proofs in any order, through one memo, each give exactly the root (or None) their own
    hashes give: what one event proved never decides another's."""
    tree_ = leaves(n)
    memo = SubtreeMemo(capacity=50)
    for leaf, index, bend, size in proofs:
        siblings = path(tree_, leaf % n)
        if 0 <= bend < len(siblings):
            siblings = [*siblings[:bend], leaf_hash(b"bent"), *siblings[bend + 1 :]]
        claimed = [(leaf % n, n), (index, n), (index, size)][bend % 3]
        alone = root_from_path(tree_[leaf % n], *claimed, siblings)
        assert root_from_path(tree_[leaf % n], *claimed, siblings, memo) == alone
        assert len(memo) <= 50
