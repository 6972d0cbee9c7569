"""Retrieval benchmark (METHODS.md row ret, first part): Br35H with the duplicate-aware split of a classification
run, and the FAISS index scaling on synthetic vectors, 2 CPU cores.

Data: the split.csv of a ``classify train`` run on Br35H (near-duplicates grouped, so no test image has a copy in
training): the training and validation images are indexed, the test images query it. Embedders: the run's
penultimate layer (``classifier-trunk``, reuse) and the classical baselines (histogram/texture features,
perceptual hash). Metrics by ``retrieve evaluate``'s code: precision@1/5/10, recall@10, mAP@10 (defined in
medlearn.evaluation.retrieval) with 95% bootstrap intervals over queries, index build time, query time. A
model trained for retrieval (contrastive) joins when it exists.

Scaling: unit vectors drawn around 1,000 random centres (d = 128) at 10^3 .. 10^6 (``--max-vectors``): exact
(flat inner product) vs HNSW: build seconds, query milliseconds (one query at a time, as a user asks), recall@10
of HNSW against exact search, memory of the vectors.

    python benchmarks/retrieval.py --workdir /work/bench/ret --classifier-run /work/bench/cls/cls-multires

Prints JSON, writes benchmarks/results/retrieval.json and the retrieval section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_table import replace_section  # noqa: E402


def split_csvs(run: Path, workdir: Path) -> tuple[Path, Path]:
    """Index CSV (train + val) and query CSV (test) from the run's split.csv."""
    with open(run / "split.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    workdir.mkdir(parents=True, exist_ok=True)
    parts = {
        "index": [r for r in rows if r["split"] in ("train", "val")],
        "test": [r for r in rows if r["split"] == "test"],
    }
    paths = {}
    for name, chosen in parts.items():
        paths[name] = workdir / f"{name}.csv"
        with open(paths[name], "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "group"])
            writer.writerows((r["path"], r["label"], r["group"]) for r in chosen)
    return paths["index"], paths["test"]


def br35h(workdir: Path, run: Path, train_minutes: float | None = None) -> dict:
    """The reused classifier trunk and the classical embedders; with ``train_minutes``, first an embedding trained
    for retrieval (retrieval-supcon on cls-multires) on the index images within that budget."""
    from medlearn.apps.retrieval.build import build_index, train_embedding
    from medlearn.apps.retrieval.evaluate import evaluate_index

    index_csv, test_csv = split_csvs(run, workdir)
    candidates = [
        ("classifier-trunk", "classifier-trunk", run),
        ("histogram", "histogram", None),
        ("phash", "phash", None),
    ]
    training = None
    if train_minutes:
        started = time.perf_counter()
        trained = train_embedding(
            str(index_csv), workdir / "retrieval-supcon", max_minutes=train_minutes, modality="MR", quiet=True
        )
        history = json.loads((trained / "metrics.json").read_text())
        training = {
            "run": str(trained),
            "epochs": len(history),
            "minutes": round((time.perf_counter() - started) / 60, 1),
        }
        candidates.insert(0, ("retrieval-supcon (trained)", "classifier-trunk", trained))
    rows = []
    for name, embedder, run_dir in candidates:
        folder = workdir / f"index-{name.split()[0]}"
        index, info = build_index(str(index_csv), folder, embedder=embedder, run_dir=run_dir)
        summary = evaluate_index(folder, str(test_csv), baselines=())
        row = {**summary, "embedder": name, "dimension": index.dimension, "build_seconds": info["seconds"]}
        row.pop("baseline", None)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {
        "run": str(run),
        "index_images": rows[0]["index_size"],
        "queries": rows[0]["queries"],
        "rows": rows,
        "trained": training,
    }


def scaling(max_vectors: int, dimension: int = 128, queries: int = 200) -> list[dict]:

    from medlearn.apps.retrieval.index import Entry, VectorIndex, approximate_recall

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, dimension))
    out = []
    size = 1000
    while size <= max_vectors:
        vectors = (centres[rng.integers(0, 1000, size)] + 0.5 * rng.normal(size=(size, dimension))).astype(np.float32)
        probes = vectors[rng.choice(size, queries, replace=False)] + 0.05 * rng.normal(size=(queries, dimension))
        entries = [Entry(str(i)) for i in range(size)]
        row = {"vectors": size, "dimension": dimension, "memory_mb": round(vectors.nbytes / 2**20, 1)}
        for kind in ("flat", "hnsw"):
            started = time.perf_counter()
            index = VectorIndex(vectors, entries, {"name": "synthetic", "version": "0"}, kind)
            row[f"{kind}_build_seconds"] = round(time.perf_counter() - started, 2)
            started = time.perf_counter()
            for probe in probes[:50]:
                index.search(probe[None], 10)
            row[f"{kind}_query_ms"] = round(1000 * (time.perf_counter() - started) / 50, 3)
            if kind == "hnsw":
                row["hnsw_recall_at_10"] = round(approximate_recall(index, probes, 10), 4)
        print(json.dumps(row), flush=True)
        out.append(row)
        size *= 10
    return out


def _ci(values) -> str:
    return "" if not values or values[0] is None else f" ({values[0]:.3f}-{values[1]:.3f})"


def markdown(results: dict) -> str:
    data = results["br35h"]
    lines = [
        f"Br35H, duplicate-aware split of `{data['run']}`: {data['index_images']} training/validation images indexed, "
        f"{data['queries']} test images query it (same label relevant; the query's near-duplicate group left out); "
        f"{results['threads']} threads. `{results['command']}` ({results['date']})",
        "",
        "| embedder | dim | P@1 (95% CI) | P@10 (95% CI) | mAP@10 (95% CI) | R@10 | build s | query ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        lines.append(
            f"| {row['embedder']} | {row['dimension']} | {row['precision_at_1']:.3f}{_ci(row['precision_at_1_ci'])} | "
            f"{row['precision_at_10']:.3f}{_ci(row['precision_at_10_ci'])} | {row['map_at_10']:.3f}"
            f"{_ci(row['map_at_10_ci'])} | {row['recall_at_10']:.3f} | {row['build_seconds']:.1f} | "
            f"{row['query_ms']:.2f} |"
        )
    lines += ["", f"{data['rows'][0]['map_definition']}.", ""]
    for row in (r for r in data["rows"] if r["embedder"] not in ("histogram", "phash")):
        target = row["precision_at_1"] >= 0.97 and row["map_at_10"] >= 0.95
        lines.append(
            f"Target (precision@1 >= 0.97 and mAP@10 >= 0.95), {row['embedder']}: **{'met' if target else 'not met'}** "
            f"(P@1 {row['precision_at_1']:.3f}, mAP@10 {row['map_at_10']:.3f})."
        )
    trained = data.get("trained")
    if trained:
        lines.append(
            f"The trained embedding: {trained['epochs']} epochs in {trained['minutes']} min on the index images (the "
            "classification pipeline's own split inside them); the reused trunk is the classification benchmark's run."
        )
    lines += [
        "",
        "FAISS on synthetic unit vectors (d = 128, 1,000 clusters): exact flat inner product vs HNSW (M 32, efSearch "
        "128), one query at a time:",
        "",
        "| vectors | memory MB | flat build s | flat query ms | HNSW build s | HNSW query ms | HNSW recall@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["scaling"]:
        lines.append(
            f"| {row['vectors']:,} | {row['memory_mb']} | {row['flat_build_seconds']} | {row['flat_query_ms']} | "
            f"{row['hnsw_build_seconds']} | {row['hnsw_query_ms']} | {row['hnsw_recall_at_10']} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medlearn-ret-bench"))
    parser.add_argument("--classifier-run", type=Path, required=False)
    parser.add_argument("--max-vectors", type=int, default=100_000)
    parser.add_argument("--train-minutes", type=float, default=None, help="Also train retrieval-supcon this long.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "retrieval.json")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if args.table_only:
        results = json.loads(args.json.read_text())
    else:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
        if args.classifier_run is None:
            raise SystemExit("--classifier-run RUN (a classify train run on Br35H) is needed")
        results = {
            "date": time.strftime("%Y-%m-%d"),
            "command": " ".join(["python", *sys.argv]),
            "threads": args.threads,
            "br35h": br35h(args.workdir, args.classifier_run, args.train_minutes),
            "scaling": scaling(args.max_vectors),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    table = markdown(results)
    print(table)
    replace_section(HERE / "RESULTS.md", "retrieval", table)


if __name__ == "__main__":
    main()
