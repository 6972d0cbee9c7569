"""Image synthesis with GANs: ``medlearn generate train|sample|evaluate|models``."""
