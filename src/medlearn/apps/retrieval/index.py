"""A vector index of image embeddings that survives a crash, a corrupted file and a changed model.

Vectors are L2-normalised, so FAISS's inner product is the cosine similarity (the trap of cosine search on raw
vectors is closed here, not left to the caller). Small indexes are searched exactly (``IndexFlatIP``); from
:data:`HNSW_FROM` vectors on an HNSW graph (``IndexHNSWFlat``, M 32, efSearch 128) answers, whose recall against
exact search :func:`approximate_recall` measures. ``vectors.npy`` is the source of truth: adding and removing
entries rebuild the FAISS structure from it.

On disk an index is a folder: ``vectors.npy``, ``entries.csv`` (path, label, group, content fingerprint), for HNSW
``index.faiss``, and ``manifest.json`` (format, embedder description, dimension, kind, SHA-256 of every file),
written last. Loading recomputes the checksums, so a truncated or edited file is an error naming it, and refuses
an index built by another embedder than the one asked for.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from medlearn.errors import MedlearnError
from medlearn.utils.atomic import atomic_path, write_bytes_atomic, write_csv_atomic, write_text_atomic
from medlearn.utils.hashing import file_sha256

FORMAT = 1
#: From this many vectors on, the default index is approximate (HNSW).
HNSW_FROM = 50_000
HNSW_NEIGHBOURS, HNSW_EF_SEARCH, HNSW_EF_CONSTRUCTION = 32, 128, 80
ENTRY_COLUMNS = ("path", "label", "group", "fingerprint")


@dataclass(frozen=True)
class Entry:
    """One indexed image: where it is, its label and group (patient, duplicate cluster) and a content digest."""

    path: str
    label: str | None = None
    group: str | None = None
    fingerprint: str = ""

    @property
    def group_key(self) -> str:
        return self.group or f"path:{self.path}"


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); a zero row is an error (it has no direction to compare)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise MedlearnError(f"embeddings must be a (n, d) array, got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise MedlearnError("embeddings hold NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise MedlearnError("an embedding is all zeros: it cannot be compared by cosine similarity")
    return np.ascontiguousarray(vectors / norms)


class VectorIndex:
    """Entries with their unit embedding vectors, searchable by cosine similarity (see the module docstring)."""

    def __init__(self, vectors: np.ndarray, entries: Sequence[Entry], embedder: dict, kind: str | None = None) -> None:
        vectors = normalise(vectors) if len(entries) else np.zeros((0, vectors.shape[1]), np.float32)
        if len(vectors) != len(entries):
            raise MedlearnError(f"{len(vectors)} vectors for {len(entries)} entries")
        self.vectors, self.entries, self.embedder = vectors, list(entries), dict(embedder)
        self.kind = kind or ("hnsw" if len(entries) >= HNSW_FROM else "flat")
        if self.kind not in ("flat", "hnsw"):
            raise MedlearnError(f"index kind must be flat or hnsw, got {self.kind!r}")
        self._faiss = self._build()

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def _build(self):
        import faiss

        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dimension, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            index = faiss.IndexFlatIP(self.dimension)
        if len(self.vectors):
            index.add(self.vectors)
        return index

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[set[int]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, positions)`` ``(q, k)`` best first; ``exclude[i]`` are positions query ``i`` must not
        get back (its own duplicate group). Fewer than ``k`` eligible entries: an error, not a short list."""
        if not len(self):
            raise MedlearnError("the index is empty: add images first")
        queries = normalise(queries)
        if queries.shape[1] != self.dimension:
            raise MedlearnError(f"query embeddings have {queries.shape[1]} dimensions, the index {self.dimension}")
        excluded = max((len(e) for e in exclude), default=0) if exclude else 0
        if k < 1 or k > len(self) - excluded:
            raise MedlearnError(f"k={k} but the index holds {len(self)} entries ({excluded} excluded per query)")
        depth = min(len(self), k + excluded)
        scores, positions = self._faiss.search(queries, depth)
        out_scores = np.zeros((len(queries), k), np.float32)
        out_positions = np.zeros((len(queries), k), np.int64)
        for row in range(len(queries)):
            skip = exclude[row] if exclude else set()
            kept = [(s, p) for s, p in zip(scores[row], positions[row], strict=True) if p >= 0 and int(p) not in skip]
            if len(kept) < k:  # an approximate index may return fewer: fall back to exact scores for this query
                exact = self.vectors @ queries[row]
                order = [int(p) for p in np.argsort(-exact, kind="stable") if int(p) not in skip]
                kept = [(exact[p], p) for p in order[:k]]
            out_scores[row], out_positions[row] = zip(*kept[:k], strict=True)
        return out_scores, out_positions

    def add(self, vectors: np.ndarray, entries: Sequence[Entry]) -> VectorIndex:
        """A new index with ``entries`` appended; a path already indexed is an error (remove it first)."""
        known = {entry.path for entry in self.entries}
        again = [entry.path for entry in entries if entry.path in known]
        if again:
            raise MedlearnError(f"{len(again)} images are already in the index (first: {again[0]}); remove them first")
        stacked = np.concatenate([self.vectors, normalise(vectors)]) if len(entries) else self.vectors
        return VectorIndex(stacked, [*self.entries, *entries], self.embedder, _kind_for(len(stacked), self.kind))

    def remove(self, paths: Sequence[str]) -> VectorIndex:
        """A new index without ``paths``; a path not in the index is an error naming it."""
        wanted = set(paths)
        missing = wanted - {entry.path for entry in self.entries}
        if missing:
            raise MedlearnError(
                f"not in the index: {sorted(missing)[0]}" + (f" (+{len(missing) - 1})" if len(missing) > 1 else "")
            )
        keep = [i for i, entry in enumerate(self.entries) if entry.path not in wanted]
        return VectorIndex(
            self.vectors[keep], [self.entries[i] for i in keep], self.embedder, _kind_for(len(keep), self.kind)
        )

    # -- disk ---------------------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Every file atomically, the manifest (with their checksums) last."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, self.vectors, allow_pickle=False)
        files = {"vectors.npy": write_bytes_atomic(folder / "vectors.npy", buffer.getvalue())}
        rows = [[entry.path, entry.label or "", entry.group or "", entry.fingerprint] for entry in self.entries]
        files["entries.csv"] = write_csv_atomic(folder / "entries.csv", ENTRY_COLUMNS, rows)
        if self.kind == "hnsw":
            import faiss

            # write_index, not serialize_index: the latter's byte vector crosses SWIG, and once SimpleITK (also
            # SWIG) is imported after faiss the vector comes back as SimpleITK's type and the save fails
            with atomic_path(folder / "index.faiss") as tmp:
                faiss.write_index(self._faiss, str(tmp))
            files["index.faiss"] = folder / "index.faiss"
        manifest = {
            "format": FORMAT,
            "kind": self.kind,
            "count": len(self),
            "dimension": self.dimension,
            "embedder": self.embedder,
            "sha256": {name: file_sha256(path) for name, path in files.items()},
        }
        write_text_atomic(folder / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, embedder: dict | None = None) -> VectorIndex:
        """The index in ``folder``, checksums verified; ``embedder`` (when given) must be the one it was built by."""
        folder = Path(folder)
        manifest = _read_manifest(folder)
        for name, digest in manifest["sha256"].items():
            path = folder / name
            if not path.is_file():
                raise MedlearnError(f"the index is missing {name}", folder)
            if file_sha256(path) != digest:
                raise MedlearnError(f"{name} does not match its checksum: the index is corrupted; rebuild it", path)
        if embedder is not None and _identity(embedder) != _identity(manifest["embedder"]):
            raise MedlearnError(
                f"the index was built by {describe(manifest['embedder'])}, not {describe(embedder)}: re-index with "
                "the current model",
                folder,
            )
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        with open(folder / "entries.csv", newline="", encoding="utf-8") as handle:
            entries = [
                Entry(row["path"], row["label"] or None, row["group"] or None, row["fingerprint"])
                for row in csv.DictReader(handle)
            ]
        index = cls.__new__(cls)
        index.vectors, index.entries, index.embedder, index.kind = (
            vectors,
            entries,
            manifest["embedder"],
            manifest["kind"],
        )
        if index.kind == "hnsw":
            import faiss

            index._faiss = faiss.read_index(str(folder / "index.faiss"))
            index._faiss.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            index._faiss = index._build()
        return index


def approximate_recall(index: VectorIndex, queries: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-``k`` neighbours (by brute-force inner product) that ``index`` returns."""
    queries = normalise(queries)
    exact = np.argsort(-(queries @ index.vectors.T), axis=1, kind="stable")[:, :k]
    _, found = index.search(queries, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact.tolist(), found.tolist(), strict=True)]))


def describe(embedder: dict) -> str:
    return f"{embedder.get('name', '?')} ({embedder.get('version', '?')})"


def entries_as_dicts(entries: Sequence[Entry]) -> list[dict]:
    return [asdict(entry) for entry in entries]


def _identity(embedder: dict) -> tuple:
    return embedder.get("name"), embedder.get("version")


def _kind_for(count: int, current: str) -> str:
    return "hnsw" if current == "hnsw" or count >= HNSW_FROM else "flat"


def _read_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        raise MedlearnError("not a medlearn index (no manifest.json)", folder)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise MedlearnError(f"manifest.json is damaged ({error.msg})", path) from None
    if manifest.get("format") != FORMAT:
        raise MedlearnError(f"index format {manifest.get('format')!r} is not {FORMAT}: rebuild the index", path)
    return manifest
