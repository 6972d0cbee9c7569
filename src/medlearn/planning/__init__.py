"""Self-configuration in the manner of nnU-Net: dataset fingerprint -> plan (spacing, patch, batch, depth)."""
