"""Running trained models on whole images: sliding-window segmentation (later: detection, export runtimes)."""
