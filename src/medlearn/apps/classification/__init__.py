"""Image classification: ``medlearn classify train|evaluate|predict|models``."""
