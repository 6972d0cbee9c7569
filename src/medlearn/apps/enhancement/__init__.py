"""Denoising and super-resolution: ``medlearn enhance train|apply|evaluate|models``."""
