"""Talking to the API server: an async client, and server-side apply with pruning."""
