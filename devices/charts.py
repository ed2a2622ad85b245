"""Server-rendered SVG line charts with time axes (no JavaScript, nothing inline for the CSP to refuse).

A chart draws a metric's bucket averages (devices/monitoring.py) as a line that breaks where the
device sent nothing, labels the time axis and the value axis, and lays an invisible band over each
bucket whose <title> the browser shows under the pointer: the bucket's time, average, min and max.
"""

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils.safestring import mark_safe

from .monitoring import bucket_starts

WIDTH, HEIGHT = 640, 150
# The plot area inside the box: room on the left for the value labels, below for the time labels.
LEFT, RIGHT, TOP, BOTTOM = 44, 6, 6, 22


@dataclass(frozen=True)
class LineChart:
    segments: list  # one SVG polyline "x,y x,y ..." per run of consecutive buckets with data
    titles: list  # what each bucket's band says under the pointer
    bands_svg: str  # the bands as SVG elements, written here: hundreds of them cost a template loop dearly
    x_ticks: list  # (x, label)
    y_ticks: list  # (y, label)
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    plot_height: int
    minimum: float
    maximum: float
    latest: float


def line_chart(points, chart_range, *, start):
    """A LineChart of `points` (monitoring.Point, in time order) over `chart_range` from `start`,
    or None when there are none."""
    if not points:
        return None
    low = min(point.minimum for point in points)
    high = max(point.maximum for point in points)
    spread = (high - low) or 1.0
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / chart_range.slots
    scale = plot_height / spread
    xs, labels, band_openings = _bucket_axis(chart_range, start)
    # One pass, strings built directly: the year's chart has hundreds of buckets, on every page view.
    segments, titles, bands, previous = [], [], [], None
    for index, _, average, minimum, maximum in points:
        if previous is None or index - previous > 1:
            segments.append([])
            line = segments[-1]
        line.append(f"{xs[index]},{TOP + (high - average) * scale:.1f}")
        previous = index
        title = labels[index] + _number(average)
        if minimum != maximum:
            title = f"{title} (min {_number(minimum)}, max {_number(maximum)})"
        titles.append(title)
        bands.append(f"{band_openings[index]}{title}</title></rect>")
    x_ticks = [
        (round(LEFT + (at - start) / chart_range.bucket * slot, 1), f"{at:{chart_range.tick_format}}")
        for at in time_ticks(start, start + chart_range.span, chart_range.tick)
    ]
    y_ticks = [
        (round(TOP + (high - value) * scale, 1), _number(value)) for value in ((high, low) if high != low else (high,))
    ]
    return LineChart(
        segments=[" ".join(run) for run in segments],
        titles=titles,
        bands_svg=mark_safe("".join(bands)),  # noqa: S308 - numbers and a date only, nothing to escape
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_top=TOP,
        plot_bottom=HEIGHT - BOTTOM,
        plot_height=HEIGHT - BOTTOM - TOP,
        minimum=low,
        maximum=high,
        latest=points[-1].average,
    )


@functools.lru_cache(maxsize=64)
def _bucket_axis(chart_range, start):
    """What each bucket of a chart over `chart_range` from `start` writes whatever the device and the
    values: its polyline x, its title's time ("2026-11-15 10:05 UTC: ", a bucket of several days by
    its first and last day: "2026-11-15 to 11-16 UTC: ") and its band's opening tag. The same for
    every device's chart until the range moves on by a bucket, so computed once per (range, start)."""
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / chart_range.slots
    stamp = 10 if chart_range.bucket >= timedelta(days=1) else 16
    last_day = chart_range.bucket - timedelta(days=1) if chart_range.bucket > timedelta(days=1) else None
    size = f'y="{TOP}" width="{slot:.2f}" height="{plot_height}"'
    xs, labels, openings = [], [], []
    for index, bucket_start in enumerate(bucket_starts(chart_range, start)):
        label = bucket_start.isoformat(" ")[:stamp]
        if last_day:
            label = f"{label} to {(bucket_start + last_day).isoformat()[5:10]}"
        xs.append(f"{LEFT + (index + 0.5) * slot:.1f}")
        labels.append(f"{label} UTC: ")
        openings.append(f'<rect class="band" x="{LEFT + index * slot:.2f}" {size}><title>')
    return xs, labels, openings


def time_ticks(start, end, step):
    """The round instants (UTC) in [start, end): every multiple of `step` since midnight of the
    first day, or the first of each month when `step` is None."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if step is None:
        at = datetime(start.year, start.month, 1, tzinfo=UTC)
        ticks = []
        while at < end:
            if at >= start:
                ticks.append(at)
            at = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
        return ticks
    at = datetime(start.year, start.month, start.day, tzinfo=UTC)
    while at < start:
        at += step
    ticks = []
    while at < end:
        ticks.append(at)
        at += step
    return ticks


def _number(value):
    """`value` to two decimals at most, without trailing zeros: 21.5, 21, 0.33."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
