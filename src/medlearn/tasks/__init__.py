"""Task definitions the training engine drives (classification now; segmentation and others plug in here)."""
