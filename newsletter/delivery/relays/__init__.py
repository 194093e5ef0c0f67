"""Relays and limits: which relay, how fast, how many at once per domain, pooled connections."""
