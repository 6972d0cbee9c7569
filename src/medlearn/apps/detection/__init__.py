"""Detection: find and score small objects (det-pixel); see ``medlearn.apps.detection.cli``."""
