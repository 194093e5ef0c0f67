"""What happened to an issue after it left: counts over time, and opt-in open and click
tracking (``models``, ``counters``, ``tracking``, ``scanners``, ``report``)."""
