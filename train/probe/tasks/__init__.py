"""Probing tasks. Each builder returns a `Task`: per split, the image paths, the statement
text each example is about, and the target."""
