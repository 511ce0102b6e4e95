"""Retrieval: global-embedding search (faiss), local features, RANSAC re-ranking, recognize."""
