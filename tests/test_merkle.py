"""Merkle inclusion proofs: every leaf of every tree size proves its root, and nothing else does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sharehub.merkle import leaf_hash, node_hash, path, root, root_from_path, tree


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
