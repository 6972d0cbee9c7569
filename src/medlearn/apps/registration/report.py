"""The ``register evaluate`` report: one page a reader can judge a registration method by.

Headline figures (label Dice, landmark error, folding, time per pair), the method beside the identity and the
classical baselines with 95% intervals over pairs and a plain sentence on who wins, the first pairs before and
after registration with their Jacobian maps (where the deformation compresses, expands or folds), and the
per-pair table.
"""

from __future__ import annotations

from pathlib import Path

from medlearn.report.html import Report

ACCURACY = (("dice", "label Dice", "higher"), ("hd95_mm", "HD95 mm", "lower"), ("tre_mm", "landmark error mm", "lower"))


def _value(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(values) -> str:
    return "" if not values or values[0] is None else f" ({values[0]:.3f}-{values[1]:.3f})"


def verdict(summary: dict) -> str:
    """Who wins on Dice (else landmark error) between the method and its best classical baseline, in words."""
    classical = {name: scores for name, scores in summary["baseline"].items() if name != "identity"}
    key = next((k for k, _, _ in ACCURACY[::2] if summary.get(k) is not None), None)
    if not classical or key is None:
        return ""
    higher = key == "dice"
    name, best = max(classical.items(), key=lambda item: (item[1].get(key) or 0) * (1 if higher else -1))
    ours, theirs = summary[key], best.get(key)
    if theirs is None:
        return ""
    better = ours > theirs if higher else ours < theirs
    low, high = (summary.get(f"{key}_ci") or [None, None])[:2]
    inside = low is not None and low <= theirs <= high
    label = "label Dice" if higher else "landmark error"
    relation = "within the method's 95% interval" if inside else ("beaten" if better else "NOT beaten")
    speed = best["seconds_per_pair"] / max(summary["seconds_per_pair"], 1e-9)
    return (
        f"{summary['method']}: {label} {ours:.3f} vs {name} {theirs:.3f} ({relation}); "
        f"{speed:.1f}x the speed of {name}; folded voxels {summary['folding_fraction']:.2%} vs "
        f"{best['folding_fraction']:.2%}."
    )


def write_evaluation_report(summary: dict, path: Path, data: str) -> Path:
    report = Report(f"Registration: {summary['method']}", f"{summary['pairs']} pairs from {data}")
    stats = []
    for key, label, _ in ACCURACY:
        if summary.get(key) is not None:
            stats.append((label, _value(summary[key]), "95% CI" + _interval(summary.get(f"{key}_ci"))))
    stats.append(
        ("folded voxels", f"{summary['folding_fraction']:.2%}", f"SD log-Jacobian {_value(summary['sdlogj'])}")
    )
    stats.append(("seconds per pair", f"{summary['seconds_per_pair']:.2f}", "on this machine"))
    report.add_summary("Summary").add_stats(None, stats)
    sentence = verdict(summary)
    if sentence:
        report.add_text(sentence)
    headers = ["method", *(label for _, label, _ in ACCURACY), "folded", "SD log-Jacobian", "s/pair"]
    rows = [_method_row(summary["method"], summary)]
    for name, scores in summary["baseline"].items():
        rows.append(_method_row(name, scores))
    report.add_section("Method beside its baselines").add_table(
        None, rows, headers, caption="Means over pairs with 95% bootstrap intervals; identity: no registration."
    )
    if summary.get("examples"):
        report.add_section("Examples")
        for index, png in enumerate(summary["examples"]):
            pair = summary["per_pair"][index]
            report.add_image(
                None,
                png,
                caption=f"{Path(pair['fixed']).name} <- {Path(pair['moving']).name}: middle slices before and after, "
                "checkerboard, Jacobian determinant (blue compressed, red expanded, black folded)",
            )
    keys = ["dice", "hd95_mm", "tre_mm", "folding_fraction", "seconds"]
    report.add_section("Per pair").add_table(
        None,
        [
            [Path(r["fixed"]).name, Path(r["moving"]).name, *(_value(r.get(k)) for k in keys)]
            for r in summary["per_pair"]
        ],
        ["fixed", "moving", *keys],
    )
    return report.write(path)


def _method_row(name: str, scores: dict) -> list[str]:
    cells = [name]
    for key, _, _ in ACCURACY:
        cells.append(_value(scores.get(key)) + _interval(scores.get(f"{key}_ci")))
    folding = scores.get("folding_fraction")
    cells.append("0" if folding is None and name == "identity" else ("n/a" if folding is None else f"{folding:.2%}"))
    cells.append(_value(scores.get("sdlogj")) if name != "identity" else "0")
    seconds = scores.get("seconds_per_pair")
    cells.append("0" if name == "identity" else _value(seconds, 2))
    return cells
