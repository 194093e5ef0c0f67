"""Small charts drawn on the server as SVG: no script, nothing from another site.

Each chart is an ``<svg>`` with a ``viewBox`` (it scales to the page, a phone's included),
``role="img"``, a ``<title>`` and a ``<desc>``; the page puts the same numbers in a table
beside it for anyone who cannot see it. Only numbers and escaped text go into the markup,
and colours come from the stylesheet's classes (``analytics.css``), so the page's
Content-Security-Policy needs nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 320
HEIGHT = 140
#: room for the axis labels: left, right, top, bottom
PAD_L, PAD_R, PAD_T, PAD_B = 36, 10, 12, 24


@dataclass(frozen=True)
class Series:
    key: str  # a CSS class suffix: ``series-KEY``
    label: str
    values: Sequence[int]


def _number(value: float) -> str:
    """A coordinate: a plain number, never text from outside."""
    return f"{float(value):.1f}"


def _short(value: int) -> str:
    """An axis label: 950, 1.2k, 3.4M."""
    for limit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if value >= limit:
            return f"{value / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return str(int(value))


def _nice_max(value: int) -> int:
    """The top of the axis: the maximum rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude


def _frame(top: int, x_labels: Sequence[str]) -> list[str]:
    """The axes, the top and zero labels, and the first, middle and last time labels."""
    bottom, right = HEIGHT - PAD_B, WIDTH - PAD_R
    parts = [
        f'<line class="axis" x1="{PAD_L}" y1="{bottom}" x2="{right}" y2="{bottom}"/>',
        f'<line class="grid" x1="{PAD_L}" y1="{PAD_T}" x2="{right}" y2="{PAD_T}"/>',
        f'<text class="tick" x="{PAD_L - 4}" y="{PAD_T + 4}" text-anchor="end">'
        f"{escape(_short(top))}</text>",
        f'<text class="tick" x="{PAD_L - 4}" y="{bottom}" text-anchor="end">0</text>',
    ]
    count = len(x_labels)
    if count:
        picks = sorted({0, count // 2, count - 1}) if count > 2 else list(range(count))
        for index in picks:
            x = _x(index, count)
            anchor = "middle"
            if count > 1 and index == 0:
                anchor = "start"
            elif count > 1 and index == count - 1:
                anchor = "end"
            parts.append(
                f'<text class="tick" x="{_number(x)}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
                f"{escape(x_labels[index])}</text>"
            )
    return parts


def _x(index: int, count: int) -> float:
    span = WIDTH - PAD_L - PAD_R
    return PAD_L + (span * index / (count - 1) if count > 1 else span / 2)


def _y(value: int, top: int) -> float:
    return HEIGHT - PAD_B - (HEIGHT - PAD_B - PAD_T) * value / top


def _svg(chart_id: str, title: str, description: str, body: list[str]) -> Markup:
    safe_id = "".join(char for char in chart_id if char.isalnum() or char in "-_") or "chart"
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{safe_id}-title {safe_id}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{safe_id}-title">{escape(title)}</title>'
        f'<desc id="{safe_id}-desc">{escape(description)}</desc>' + "".join(body) + "</svg>"
    )


def line_chart(
    chart_id: str, title: str, x_labels: Sequence[str], series: Sequence[Series]
) -> Markup:
    """Lines over time (one per series), for totals that grow."""
    top = _nice_max(max((max(s.values, default=0) for s in series), default=0))
    body = _frame(top, x_labels)
    count = len(x_labels)
    for line in series:
        points = " ".join(
            f"{_number(_x(index, count))},{_number(_y(value, top))}"
            for index, value in enumerate(line.values)
        )
        css = f"series-{escape(line.key)}"
        if count == 1:
            x, y = _x(0, 1), _y(line.values[0], top)
            body.append(f'<circle class="dot {css}" cx="{_number(x)}" cy="{_number(y)}" r="3"/>')
        elif points:
            body.append(f'<polyline class="line {css}" fill="none" points="{points}"/>')
    return _svg(chart_id, title, _describe(series, "at the end"), body)


def bar_chart(chart_id: str, title: str, x_labels: Sequence[str], line: Series) -> Markup:
    """Bars over time for one series: how many in each bucket."""
    top = _nice_max(max(line.values, default=0))
    body = _frame(top, x_labels)
    count = max(len(x_labels), 1)
    slot = (WIDTH - PAD_L - PAD_R) / count
    width = max(slot * 0.8, 0.5)
    css = f"series-{escape(line.key)}"
    for index, value in enumerate(line.values):
        if value <= 0:
            continue
        x = PAD_L + slot * index + (slot - width) / 2
        y = _y(value, top)
        body.append(
            f'<rect class="bar {css}" x="{_number(x)}" y="{_number(y)}" '
            f'width="{_number(width)}" height="{_number(HEIGHT - PAD_B - y)}"/>'
        )
    total = sum(line.values)
    description = f"{line.label}: {total} in all, at most {max(line.values, default=0)} in one bar."
    return _svg(chart_id, title, description, body)


def _describe(series: Sequence[Series], when: str) -> str:
    return "; ".join(f"{s.label}: {s.values[-1] if s.values else 0} {when}" for s in series) + "."
