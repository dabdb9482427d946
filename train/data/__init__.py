"""Data pipeline: pair shards + candidate-set shards, mixed per step."""
