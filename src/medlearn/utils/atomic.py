"""Atomic file writes: a reader or a crash never sees a half-written output."""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_csv_atomic(path: str | Path, header: Sequence[str], rows: Sequence[Sequence | Mapping]) -> Path:
    """A CSV table written atomically: rows are sequences, or mappings whose missing columns stay empty; no rows
    writes the header alone."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        if rows and isinstance(rows[0], Mapping):
            writer = csv.DictWriter(handle, fieldnames=list(header), restval="")
            writer.writeheader()
        else:
            writer = csv.writer(handle)
            writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
