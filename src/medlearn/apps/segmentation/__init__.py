"""Segmentation, planned from a dataset fingerprint: ``medlearn segment plan|train|evaluate|predict|models``."""
