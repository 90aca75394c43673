"""The comparison servers the benchmark starts; each runs in its own virtualenv's Python."""
