"""medlearn: deep learning for medical image analysis, built to run well on a laptop CPU."""

__version__ = "0.1.0"
