"""Retrieval benchmark (METHODS.md row ret, first part): Br35H with the duplicate-aware split of a classification
run, and the FAISS index scaling on synthetic vectors, 2 CPU cores.

Data: the split.csv of a ``classify train`` run on Br35H (near-duplicates grouped, so no test image has a copy in
training): the training and validation images are indexed, the test images query it. Embedders: the run's
penultimate layer (``classifier-trunk``, reuse) and the classical baselines (histogram/texture features,
perceptual hash). Metrics by ``retrieve evaluate``'s code: precision@1/5/10, recall@10, mAP@10 (defined in
medlearn.evaluation.retrieval) with 95% bootstrap intervals over queries, index build time, query time. A
model trained for retrieval with labels (``--train-minutes``: retrieval-supcon) and one trained without them
(``--self-supervised-minutes``: retrieval-simclr on the index images with their labels withheld) join.

Instance retrieval (``--parts instance``): the test images index themselves and each queries the rest; relevant =
the same near-duplicate group (perceptual-hash clusters merged with the split's groups; Br35H has no patient IDs),
only the query's own file left out, queries without a group mate not scored. The groups are defined by the
perceptual hash, so the phash row is near-perfect by construction: the question is how close the others come.

Scaling: unit vectors drawn around 1,000 random centres (d = 128) at 10^3 .. 10^6 (``--max-vectors``): exact
(flat inner product) vs HNSW: build seconds, query milliseconds (one query at a time, as a user asks), recall@10
of HNSW against exact search, memory of the vectors.

    python benchmarks/retrieval.py --workdir /work/bench/ret --classifier-run /work/bench/cls/cls-multires
    python benchmarks/retrieval.py ... --parts self-supervised instance --self-supervised-minutes 10  # merged in

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
        summary = evaluate_index(folder, str(test_csv), baselines=()).summary
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


def self_supervised(workdir: Path, run: Path, minutes: float) -> dict:
    """retrieval-simclr trained ``minutes`` on the index images with their labels withheld, scored by label."""
    from medlearn.apps.retrieval.build import build_index, train_embedding
    from medlearn.apps.retrieval.evaluate import evaluate_index

    index_csv, test_csv = split_csvs(run, workdir)
    unlabelled = workdir / "index-unlabelled.csv"
    with open(index_csv, newline="") as source, open(unlabelled, "w", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(["path", "group"])
        writer.writerows((row["path"], row["group"]) for row in csv.DictReader(source))
    started = time.perf_counter()
    trained = train_embedding(
        str(unlabelled), workdir / "retrieval-simclr", model="retrieval-simclr", max_minutes=minutes, modality="MR",
        quiet=True,
    )  # fmt: skip
    minutes_used = round((time.perf_counter() - started) / 60, 1)
    history = json.loads((trained / "metrics.json").read_text())
    folder = workdir / "index-retrieval-simclr"
    index, info = build_index(str(index_csv), folder, embedder="self-supervised", run_dir=trained)
    summary = evaluate_index(folder, str(test_csv), baselines=()).summary
    row = {**summary, "embedder": "retrieval-simclr (self-supervised)", "dimension": index.dimension,
           "build_seconds": info["seconds"]}  # fmt: skip
    row.pop("baseline", None)
    print(json.dumps(row), flush=True)
    validation = json.loads((trained / "validation.json").read_text())
    return {"row": row, "training": {"run": str(trained), "epochs": len(history), "minutes": minutes_used,
                                     "view_top1": validation["best"].get("view_top1")}}  # fmt: skip


def instance(workdir: Path, run: Path) -> dict:
    """Each embedder indexes the test images; every test image queries the others for its own group."""
    from medlearn.apps.retrieval.build import build_index
    from medlearn.apps.retrieval.evaluate import evaluate_index

    _, test_csv = split_csvs(run, workdir)
    candidates = [
        ("retrieval-supcon (trained)", "classifier-trunk", workdir / "retrieval-supcon"),
        ("retrieval-simclr (self-supervised)", "self-supervised", workdir / "retrieval-simclr"),
        ("classifier-trunk", "classifier-trunk", run),
        ("histogram", "histogram", None),
        ("phash", "phash", None),
    ]
    rows = []
    for name, embedder, run_dir in candidates:
        if run_dir is not None and not (run_dir / "config.yaml").is_file():
            continue
        folder = workdir / f"instance-{name.split()[0]}"
        index, _ = build_index(str(test_csv), folder, embedder=embedder, run_dir=run_dir)
        summary = evaluate_index(folder, str(test_csv), relevance="group", baselines=()).summary
        row = {**summary, "embedder": name, "dimension": index.dimension}
        row.pop("baseline", None)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {"index_images": rows[0]["index_size"], "rows": rows}


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
    ssl = data.get("self_supervised")
    if ssl:
        lines.append(
            f"The self-supervised embedding (retrieval-simclr, labels withheld): {ssl['epochs']} epochs in "
            f"{ssl['minutes']} min; on its held-out views the right partner was the nearest for "
            f"{ssl['view_top1']:.1%} of images. `{results.get('self_supervised_command', '')}`"
        )
    found = results.get("instance")
    if found:
        lines += [
            "",
            f"Instance retrieval: the {found['index_images']} test images index themselves; relevant = the query's "
            "near-duplicate group (perceptual-hash clusters: phash defines the groups, so its row is near-perfect by "
            "construction); only the query's own file left out; queries without a group mate not scored. "
            f"`{found.get('command', '')}`",
            "",
            "| embedder | queries scored | P@1 (95% CI) | mAP@10 (95% CI) | R@10 |",
            "|---|---|---|---|---|",
        ]
        for row in found["rows"]:
            lines.append(
                f"| {row['embedder']} | {row['queries']} | {row['precision_at_1']:.3f}{_ci(row['precision_at_1_ci'])}"
                f" | {row['map_at_10']:.3f}{_ci(row['map_at_10_ci'])} | {row['recall_at_10']:.3f} |"
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
    parser.add_argument("--self-supervised-minutes", type=float, default=10.0)
    parser.add_argument(
        "--parts", nargs="+", default=["label", "scaling"], choices=["label", "self-supervised", "instance", "scaling"],
        help="What to run; the others are kept from the saved JSON.",
    )  # fmt: skip
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
        results = json.loads(args.json.read_text()) if args.json.is_file() else {}
        command = " ".join(["python", *sys.argv])
        results.update({"date": time.strftime("%Y-%m-%d"), "threads": args.threads})
        if "label" in args.parts:
            results.update({"command": command, "br35h": br35h(args.workdir, args.classifier_run, args.train_minutes)})
        if "self-supervised" in args.parts:
            found = self_supervised(args.workdir, args.classifier_run, args.self_supervised_minutes)
            rows = [r for r in results["br35h"]["rows"] if r["embedder"] != found["row"]["embedder"]]
            results["br35h"]["rows"] = [*rows[:1], found["row"], *rows[1:]]
            results["br35h"]["self_supervised"] = found["training"]
            results["self_supervised_command"] = command
        if "instance" in args.parts:
            results["instance"] = {**instance(args.workdir, args.classifier_run), "command": command}
        if "scaling" in args.parts:
            results["scaling"] = scaling(args.max_vectors)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    table = markdown(results)
    print(table)
    replace_section(HERE / "RESULTS.md", "retrieval", table)


if __name__ == "__main__":
    main()
