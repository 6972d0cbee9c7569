"""The unit every data source yields and every split, dataset and report consumes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One labelled image on disk.

    ``group`` keeps related images together across splits (same patient, or near-duplicates found by
    perceptual hashing); samples with no group are their own group (``group_key``).
    ``target`` is the path of a paired target (a mask for segmentation), unused for classification.
    """

    path: Path
    label: str | None = None
    group: str | None = None
    target: Path | None = None

    @property
    def group_key(self) -> str:
        return self.group if self.group is not None else f"path:{self.path}"

    def with_group(self, group: str | None) -> Sample:
        return replace(self, group=group)
