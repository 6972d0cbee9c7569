"""Content-based image retrieval: embeddings, a checked vector index, query by image, ranking metrics."""
