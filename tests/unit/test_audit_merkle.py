"""ledger/audit/merkle.py against the published RFC 6962 / RFC 9162 test vectors.

The vectors are Certificate Transparency's, as transparency-dev/merkle keeps them
(Apache-2.0): rfc6962/rfc6962_test.go (hasher), testonly/constants.go (leaves, node and root
hashes of the 8-leaf reference tree), proof/verify_test.go (inclusion and consistency
proofs, and the ways of corrupting a proof a verifier must refuse), proof/proof_test.go
(which nodes a proof is made of). Only the data is taken; the tests are ours.
"""

from __future__ import annotations

from hashlib import sha256

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    Tree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

# testonly.LeafInputs()
LEAVES = [h(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                         "606162636465666768696a6b6c6d6e6f")]
# testonly.RootHashes(): the root of the first n leaves, n = 0..8
ROOTS = [EMPTY_ROOT] + [h(x) for x in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
# testonly.NodeHashes(): [level][index] of every complete subtree of the 8-leaf tree
NODES = [[h(x) for x in level] for level in (
    ("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
     "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
     "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
     "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
     "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",),
)]
# proof/verify_test.go inclusionProofs: (leaf index, tree size, proof); its leaves count
# from 1, here from 0.
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]
# proof/verify_test.go consistencyProofs: (first size, second size, proof)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


def stored(level: int, index: int) -> bytes:
    """The reference tree's complete subtrees, as a store would give them."""
    return NODES[level][index]


def test_hashes_are_rfc_6962s_leaf_and_node_hashes() -> None:
    assert sha256(b"").hexdigest() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == EMPTY_ROOT.hex()
    assert leaf_hash(b"") == h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert leaf_hash(b"L123456") == h(
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    assert node_hash(b"N123", b"N456") == h(
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb")


def test_roots_of_every_prefix_of_the_reference_tree_are_the_published_roots() -> None:
    leaves = [leaf_hash(data) for data in LEAVES]
    for size, root in enumerate(ROOTS):
        assert root_of(leaves[:size]) == root, size
        assert range_hash(0, size, stored) == root, size


def test_the_frontier_completes_the_published_subtrees_and_roots() -> None:
    frontier = Frontier()
    for index, data in enumerate(LEAVES):
        completed = frontier.append(leaf_hash(data))
        # The subtrees this leaf completes are the nodes ending at it, level 1 up.
        assert completed == [NODES[level][index >> level] for level in range(1, 4)
                             if (index + 1) % (1 << level) == 0]
        assert frontier.root() == ROOTS[index + 1]
    again = Frontier.of(8, stored)
    assert again.root() == ROOTS[8] and again.nodes == [NODES[3][0]]


def test_a_tree_keeps_every_published_subtree_and_gives_every_root() -> None:
    tree = Tree()
    for data in LEAVES:
        tree.append(leaf_hash(data))
    assert [[tree.node(level, index) for index in range(len(NODES[level]))]
            for level in range(4)] == NODES
    assert [tree.root_at(size) for size in range(9)] == ROOTS
    assert consistency_proof(6, 8, tree.node) == [h(p) for p in CONSISTENCY[2][2]]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_are_the_published_ones_and_verify(index: int, size: int,
                                                            proof: list[str]) -> None:
    expected = [h(p) for p in proof]
    assert inclusion_proof(index, size, stored) == expected
    assert verify_inclusion(index, size, leaf_hash(LEAVES[index]), expected, ROOTS[size])


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION[:4])
def test_a_corrupted_inclusion_proof_is_refused(index: int, size: int,
                                                proof: list[str]) -> None:
    """Every corruption verify_test.go's corruptInclusionProof makes."""
    good, leaf, root = [h(p) for p in proof], leaf_hash(LEAVES[index]), ROOTS[size]
    probes = [
        (index - 1, size, root, leaf, good), (index + 1, size, root, leaf, good),
        (index ^ 2, size, root, leaf, good), (index, size * 2, root, leaf, good),
        (index, size // 2, root, leaf, good), (index, size, root, b"WrongLeaf", good),
        (index, size, EMPTY_ROOT, leaf, good), (index, size, SOME_HASH, leaf, good),
        (index, size, root, leaf, [*good, b""]), (index, size, root, leaf, [*good, root]),
        (index, size, root, leaf, [b"", *good]), (index, size, root, leaf, [root, *good]),
        (index, size, root, leaf, good[:-1]),
    ]
    for n in range(len(good)):
        flipped = list(good)
        flipped[n] = bytes([flipped[n][0] ^ 8]) + flipped[n][1:]
        probes.append((index, size, root, leaf, flipped))
    if len(good) > 1:
        probes.append((index, size, root, leaf, [good[0], SOME_HASH, *good[1:]]))
    for i, n, r, lf, p in probes:
        assert not verify_inclusion(i, n, lf, p, r), (i, n, lf, p, r)


def test_inclusion_of_nothing_and_of_a_lone_leaf() -> None:
    """verify_test.go's TestVerifyInclusion probes and TestVerifyInclusionSingleEntry."""
    for index, size in ((0, 0), (0, 1), (1, 0), (2, 1)):
        assert not verify_inclusion(index, size, SOME_HASH, [], b"")
        assert not verify_inclusion(index, size, b"", [], EMPTY_ROOT)
        assert not verify_inclusion(index, size, SOME_HASH, [], EMPTY_ROOT)
    leaf = leaf_hash(b"data")
    assert verify_inclusion(0, 1, leaf, [], leaf)
    assert not verify_inclusion(0, 1, b"", [], leaf)
    assert not verify_inclusion(0, 1, leaf, [], b"")
    with pytest.raises(ValueError):
        inclusion_proof(8, 7, stored)


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_proofs_are_the_published_ones_and_verify(first: int, second: int,
                                                              proof: list[str]) -> None:
    expected = [h(p) for p in proof]
    assert consistency_proof(first, second, stored) == expected
    assert verify_consistency(first, second, ROOTS[first], ROOTS[second], expected)


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY[1:])
def test_a_corrupted_consistency_proof_is_refused(first: int, second: int,
                                                  proof: list[str]) -> None:
    """Every corruption verify_test.go's corruptConsistencyProof makes."""
    good, r1, r2 = [h(p) for p in proof], ROOTS[first], ROOTS[second]
    probes = [
        (first - 1, second, r1, r2, good), (first + 1, second, r1, r2, good),
        (first ^ 2, second, r1, r2, good), (first, second * 2, r1, r2, good),
        (first, second // 2, r1, r2, good), (first, second, b"WrongRoot", r2, good),
        (first, second, r1, b"WrongRoot", good), (first, second, r2, r1, good),
        (first, second, r1, r2, []), (first, second, r1, r2, [*good, b""]),
        (first, second, r1, r2, [*good, r1]), (first, second, r1, r2, [*good, r2]),
        (first, second, r1, r2, [b"", *good]), (first, second, r1, r2, [r1, *good]),
        (first, second, r1, r2, [r2, *good]), (first, second, r1, r2, [good[0], *good]),
        (first, second, r1, r2, good[:-1]),
    ]
    for n in range(len(good)):
        flipped = list(good)
        flipped[n] = bytes([flipped[n][0] ^ 16]) + flipped[n][1:]
        probes.append((first, second, r1, r2, flipped))
    for m, n, a, b, p in probes:
        assert not verify_consistency(m, n, a, b, p), (m, n, p)


def test_consistency_between_trivial_sizes() -> None:
    """verify_test.go's TestVerifyConsistency table."""
    root1, root2 = b"don't care 1", b"don't care 2"
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(1, 1, root2, root2, [])
    assert verify_consistency(0, 1, EMPTY_ROOT, root2, [])
    # Stricter than the Go table, which takes any first root for size 0: the empty tree's
    # root is the hash of nothing, and a head of size 0 says so.
    assert not verify_consistency(0, 1, root1, root2, [])
    for first, second, a, b, proof in (
        (0, 0, root1, root2, []), (1, 1, root1, root2, []), (1, 0, root1, root2, []),
        (2, 1, root1, root2, []), (1, 2, root1, root2, []), (0, 0, EMPTY_ROOT, root2, []),
        (1, 1, EMPTY_ROOT, root2, []), (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
    ):
        assert not verify_consistency(first, second, a, b, proof), (first, second)


# proof/proof_test.go: which stored nodes a proof is made of, for trees larger than the
# reference tree. A node (level, index) here is a perfect subtree; where the Go table
# "rehashes" (folds several nodes into one, for the right edge of a tree whose size is not
# a power of two) the proof holds the fold, which is range_hash of the range they cover.
def test_proofs_take_the_nodes_proof_test_go_names() -> None:
    def node(level: int, index: int) -> bytes:
        return leaf_hash(f"{level}/{index}".encode())

    def folded(*nodes: tuple[int, int]) -> bytes:
        parts = [leaf_hash(f"{level}/{index}".encode()) for level, index in nodes]
        out = parts[-1]
        for left in reversed(parts[:-1]):
            out = node_hash(left, out)
        return out

    def plain(*nodes: tuple[int, int]) -> list[bytes]:
        return [folded(n) for n in nodes]

    # Inclusion of leaf 2 in a tree of 7: d g, then l = hash(i, j) folded, where Go lists
    # the rehashed pair j i (leaf 6, then node (1, 2)).
    assert inclusion_proof(2, 7, node) == [*plain((0, 3), (1, 0)), folded((1, 2), (0, 6))]
    assert inclusion_proof(4, 7, node) == plain((0, 5), (0, 6), (2, 0))
    assert inclusion_proof(10, 15, node) == [*plain((0, 11), (1, 4)),
                                            folded((1, 6), (0, 14)), *plain((3, 0))]
    assert inclusion_proof(81, 95, node) == [
        *plain((0, 80), (1, 41), (2, 21)), folded((2, 22), (1, 46), (0, 94)),
        *plain((4, 4), (6, 0))]
    assert consistency_proof(5, 7, node) == plain((0, 4), (0, 5), (0, 6), (2, 0))
    assert consistency_proof(3, 7, node) == [*plain((0, 2), (0, 3), (1, 0)),
                                            folded((1, 2), (0, 6))]
    assert consistency_proof(7, 8, node) == plain((0, 6), (0, 7), (1, 2), (2, 0))
    assert consistency_proof(10, 15, node) == [*plain((1, 4), (1, 5)),
                                              folded((1, 6), (0, 14)), *plain((3, 0))]
    assert consistency_proof(24, 31, node) == [
        *plain((3, 2)), folded((2, 6), (1, 14), (0, 30)), *plain((4, 0))]
    assert consistency_proof(81, 95, node) == [
        *plain((0, 80), (0, 81), (1, 41), (2, 21)), folded((2, 22), (1, 46), (0, 94)),
        *plain((4, 4), (6, 0))]


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_every_proof_made_from_stored_nodes_verifies(leaves: list[bytes],
                                                      data: st.DataObject) -> None:
    """Proofs from the stored complete subtrees (as the server keeps them) verify with the
    RFC's own algorithms, for any tree and any pair of sizes."""
    hashes = [leaf_hash(x) for x in leaves]

    def node(level: int, index: int) -> bytes:
        start, end = index << level, (index + 1) << level
        assert end <= len(hashes), "only complete subtrees are stored"
        return root_of(hashes[start:end])

    size = data.draw(st.integers(1, len(hashes)))
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(0, size))
    root = root_of(hashes[:size])
    assert verify_inclusion(index, size, hashes[index], inclusion_proof(index, size, node), root)
    assert verify_consistency(first, size, root_of(hashes[:first]), root,
                              consistency_proof(first, size, node))
