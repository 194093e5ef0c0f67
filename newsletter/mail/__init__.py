"""Turning an issue into messages: render, MIME skeleton, transports."""
