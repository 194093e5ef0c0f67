"""Segments: saved filters over subscribers in a small query language (``query.py``),
compiled to SQL with bound parameters (``compile.py``), stored and counted (``service.py``)."""

from __future__ import annotations

from newsletter.audience.segments.query import SegmentQueryError, format_query, parse

__all__ = ["SegmentQueryError", "format_query", "parse"]
