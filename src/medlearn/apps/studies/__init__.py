"""Studies that combine tasks (the label-scarce augmentation study: ``medlearn generate study``)."""
