"""Data layer: where samples come from and how they are kept honest before training.

- :mod:`~medlearn.data.sources` turns a class-folder tree, a CSV manifest or the bundled Br35H set
  into :class:`~medlearn.data.records.Sample` lists.
- :mod:`~medlearn.data.dedup` finds near-duplicate images by perceptual hashing and puts them in one
  group, so a split cannot put copies of the same slice on both sides.
- :mod:`~medlearn.data.splits` makes group-aware, label-stratified splits and k folds.
- :mod:`~medlearn.data.audit` summarises a data set and measures what a naive split would leak.
- :mod:`~medlearn.data.augment` builds seeded MONAI augmentation per modality.

Submodules are imported where used (this package import stays cheap: no torch, no scikit-learn).
"""

from medlearn.data.records import Sample

__all__ = ["Sample"]
