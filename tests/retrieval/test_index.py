"""The vector index: cosine search on unit vectors, save/load/add/remove round trips, the duplicate-group
exclusion, corrupted files and another embedder refused, HNSW recall against exact search."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.apps.retrieval.index import Entry, VectorIndex, approximate_recall
from medlearn.errors import MedlearnError

EMBEDDER = {"name": "histogram", "version": "1"}


def _index(n: int = 20, d: int = 8, kind: str | None = None) -> tuple[VectorIndex, np.ndarray]:
    vectors = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    entries = [Entry(f"img{i}.png", label=str(i % 2), group=f"g{i // 2}") for i in range(n)]
    return VectorIndex(vectors, entries, EMBEDDER, kind), vectors


def test_search_is_cosine_similarity_whatever_the_vector_lengths():
    index, vectors = _index()
    scaled = vectors[3] * 250.0  # a long query vector must find the same neighbours as a unit one
    scores, positions = index.search(scaled[None], 3)
    assert positions[0, 0] == 3 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(scores[0], np.sort(unit @ unit[3])[::-1][:3], atol=1e-5)


def test_the_querys_own_group_is_excluded_when_asked():
    index, vectors = _index()
    _, positions = index.search(vectors[4][None], 5, exclude=[{4, 5}])  # img4 and img5 share group g2
    assert not {4, 5} & set(positions[0].tolist()) and len(positions[0]) == 5


def test_save_load_add_remove_round_trip(tmp_path):
    index, vectors = _index()
    loaded = VectorIndex.load(index.save(tmp_path / "idx"), embedder=EMBEDDER)
    np.testing.assert_array_equal(loaded.vectors, index.vectors)
    assert loaded.entries == index.entries
    grown = loaded.add(vectors[:1] * -1.0, [Entry("new.png", "1")])
    assert len(grown) == 21 and grown.search(-vectors[:1], 1)[1][0, 0] == 20
    shrunk = VectorIndex.load(grown.remove(["img0.png", "new.png"]).save(tmp_path / "idx"))
    assert len(shrunk) == 19 and "img0.png" not in {e.path for e in shrunk.entries}
    with pytest.raises(MedlearnError, match="already in the index"):
        shrunk.add(vectors[:1], [Entry("img1.png")])
    with pytest.raises(MedlearnError, match="not in the index: nope.png"):
        shrunk.remove(["nope.png"])


def test_a_corrupted_file_or_another_embedder_is_refused(tmp_path):
    index, _ = _index()
    folder = index.save(tmp_path / "idx")
    with pytest.raises(MedlearnError, match="built by histogram"):
        VectorIndex.load(folder, embedder={"name": "trunk", "version": "abc"})
    data = bytearray((folder / "vectors.npy").read_bytes())
    data[-4] ^= 0xFF
    (folder / "vectors.npy").write_bytes(bytes(data))
    with pytest.raises(MedlearnError, match="checksum"):
        VectorIndex.load(folder)


def test_empty_index_zero_vectors_and_a_too_large_k_are_clear_errors():
    empty = VectorIndex(np.zeros((0, 4), np.float32), [], EMBEDDER)
    with pytest.raises(MedlearnError, match="empty"):
        empty.search(np.ones((1, 4)), 1)
    index, vectors = _index(n=6)
    with pytest.raises(MedlearnError, match="k=7"):
        index.search(vectors[:1], 7)
    with pytest.raises(MedlearnError, match="all zeros"):
        index.search(np.zeros((1, 8)), 1)


def test_hnsw_finds_almost_all_exact_neighbours(tmp_path):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 32))
    vectors = (centres[rng.integers(0, 50, 3000)] + 0.3 * rng.normal(size=(3000, 32))).astype(np.float32)
    index = VectorIndex(vectors, [Entry(f"v{i}") for i in range(3000)], EMBEDDER, kind="hnsw")
    assert approximate_recall(index, vectors[:100], k=10) > 0.95
    loaded = VectorIndex.load(index.save(tmp_path / "hnsw"))
    assert loaded.kind == "hnsw" and approximate_recall(loaded, vectors[:100], k=10) > 0.95


def test_embedding_duplicates_beyond_the_hash_groups():
    from medlearn.apps.retrieval.duplicates import beyond_hashes, embedding_duplicates

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(6, 16)).astype(np.float32)
    vectors[1] = vectors[0] + 0.001  # a copy the hash missed (another group)
    vectors[3] = vectors[2] + 0.001  # a copy the hash found (same group)
    entries = [Entry("a", group="g0"), Entry("b", group="g1"), Entry("c", group="g2"), Entry("d", group="g2")]
    entries += [Entry("e"), Entry("f")]
    pairs = embedding_duplicates(VectorIndex(vectors, entries, EMBEDDER), min_similarity=0.99)
    assert {(p.first, p.second) for p in pairs} == {("a", "b"), ("c", "d")}
    assert [(p.first, p.second) for p in beyond_hashes(pairs)] == [("a", "b")]


def test_an_hnsw_index_saves_whatever_swig_module_was_imported_after_faiss(tmp_path):
    import subprocess
    import sys

    # faiss then SimpleITK in one process: both are SWIG modules, and faiss.serialize_index then fails
    script = (
        "import faiss, SimpleITK, numpy as np\n"
        "from medlearn.apps.retrieval.index import Entry, VectorIndex\n"
        "v = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)\n"
        "i = VectorIndex(v, [Entry(f'v{n}') for n in range(50)], {'name': 'phash', 'version': '1'}, kind='hnsw')\n"
        f"print(len(VectorIndex.load(i.save({str(tmp_path / 'idx')!r}))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "50"
