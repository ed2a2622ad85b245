"""What the device page's monitoring panel shows: per-metric series and the uptime over a range.

A range reads the device's rollups (devices/rollups.py) of its resolution up to where they are
complete, the finer ones after that, and the raw heartbeats of the last minutes not rolled up yet,
so that the chart is current (the whole range where no beat task builds rollups, as on the embedded
default): four queries at most (the range's own rollups come from the cache once read), however
long the range and the history, and a few hundred buckets a metric.
"""

import functools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.utils import timezone

from .models import Device, MetricRollup
from .rollups import add_aggregate, floor_time, merge_rollups, read_closed_rollups, read_rollups, rolled_up_until

Resolution = MetricRollup.Resolution


@dataclass(frozen=True)
class ChartRange:
    """A range the device page offers: its span, the rollups it reads, the chart's bucket width,
    and the time axis's ticks (every `tick`, or every month) with their label format."""

    key: str
    label: str
    span: timedelta
    resolution: int
    bucket: timedelta
    tick: timedelta | None
    tick_format: str

    @property
    def slots(self):
        """Buckets on the chart: the span's, and one more as the first starts at a round instant."""
        return math.ceil(self.span / self.bucket) + 1


RANGES = {
    chart_range.key: chart_range
    for chart_range in (
        ChartRange(
            "24h", "24 hours", timedelta(hours=24), Resolution.MINUTE, timedelta(minutes=5), timedelta(hours=3), "%H:%M"
        ),
        ChartRange("7d", "7 days", timedelta(days=7), Resolution.HOUR, timedelta(hours=1), timedelta(days=1), "%a %d"),
        ChartRange(
            # Six hours a point: 121 points draw a month on a 600-pixel chart, and each point costs
            # the page its SVG and its title.
            "30d",
            "30 days",
            timedelta(days=30),
            Resolution.HOUR,
            timedelta(hours=6),
            timedelta(days=5),
            "%b %d",
        ),
        # Two days a point: 183 points draw a year on a 600-pixel chart as well as 365 would.
        ChartRange("1y", "1 year", timedelta(days=365), Resolution.DAY, timedelta(days=2), None, "%b"),
    )
}
DEFAULT_RANGE = "24h"


class Point(NamedTuple):
    """One chart bucket of one metric: its index and start, and the values' average, min and max.
    (A tuple: the year's chart makes hundreds of them on every view.)"""

    index: int
    start: datetime
    average: float
    minimum: float
    maximum: float


def offered_ranges():
    """The ranges the rollups' retention can fill (the longest is as far back as they go)."""
    kept = timedelta(days=settings.ROLLUP_RETENTION_DAYS)
    return [
        chart_range for chart_range in RANGES.values() if chart_range.span <= kept or chart_range.key == DEFAULT_RANGE
    ]


def chart_range(key):
    """The ChartRange named `key` (a query parameter), or the default for anything else."""
    offered = {chart_range.key: chart_range for chart_range in offered_ranges()}
    return offered.get(key) or RANGES[DEFAULT_RANGE]


def monitoring(device, chart_range=None, *, now=None):
    """Per-metric series and the uptime of `device` over `chart_range` (default: 24 hours) up to now.

    Returns {"range", "start", "end", "series": {name: [Point, ...]}, "uptime": fraction}. Rollups
    cover the range up to where they are complete, raw heartbeats the rest. The uptime of the raw
    part follows Device.offline_after exactly (uptime_fraction); over rollups, where single
    heartbeats are gone, each heartbeat stands for one interval, at most a whole bucket.
    """
    chart_range = chart_range or RANGES[DEFAULT_RANGE]
    now = now or timezone.now()
    # Buckets start at multiples of their width, as the rollups' minutes and hours do: a rollup
    # falls in the same bucket as its heartbeats would.
    since = now - chart_range.span  # the uptime's window
    start = floor_time(since, int(chart_range.bucket.total_seconds()))
    # The range's resolution up to where it is complete, each finer one from there up to its own end.
    periods, raw_from, reached = [], start, rolled_up_until()
    for resolution in sorted((r for r in Resolution if r <= chart_range.resolution), reverse=True):
        until = min(max(raw_from, reached.get(resolution, raw_from)), now)
        periods.append((resolution, raw_from, until))
        raw_from = until
    # The range's own resolution covers most of it and changes only as its rollups move on: cached.
    closed, *finer = periods
    buckets = merge_rollups(
        read_closed_rollups(device, closed, start=start, bucket=chart_range.bucket),
        read_rollups(device, finer, start=start, bucket=chart_range.bucket),
    )
    interval = device.device_model.heartbeat_interval
    covered = min(
        max(raw_from - since, timedelta()),
        sum(
            (
                min(chart_range.bucket, count * timedelta(seconds=interval))
                for count, *_ in buckets.get(MetricRollup.HEARTBEATS, {}).values()
            ),
            timedelta(),
        ),
    )
    raw = list(
        device.heartbeats.filter(received_at__gte=raw_from, received_at__lte=now)
        .order_by("received_at")
        .values_list("received_at", "metrics")
    )
    raw_since = max(raw_from, since)
    covered += uptime_fraction([at for at, _ in raw], interval=interval, start=raw_since, end=now) * (now - raw_since)
    for at, metrics in raw:
        index = min(chart_range.slots - 1, int((at - start) / chart_range.bucket))
        for name, value in metrics.items():
            value = float(value)
            add_aggregate(buckets.setdefault(name, {}), index, 1, value, value, value)
    return {
        "range": chart_range,
        "start": start,
        "end": now,
        "series": _series(buckets, chart_range, start),
        "uptime": covered / chart_range.span,
    }


def _series(buckets, chart_range, start):
    """{metric: [Point, ...]} in time order, metrics by name, without the heartbeat counts."""
    starts, series = bucket_starts(chart_range, start), {}
    for name in sorted(buckets):
        if name == MetricRollup.HEARTBEATS:
            continue
        points = [
            Point(index, starts[index], total / count, minimum, maximum)
            for index, (count, minimum, maximum, total) in sorted(buckets[name].items())
            if count and total is not None
        ]
        if points:
            series[name] = points
    return series


@functools.lru_cache(maxsize=64)
def bucket_starts(chart_range, start):
    """When each bucket of `chart_range` from `start` begins: the same for every device's chart."""
    return tuple(start + index * chart_range.bucket for index in range(chart_range.slots))


def uptime_fraction(timestamps, *, interval, start, end):
    """Share of [start, end] covered by heartbeats, each counting until the device would be offline
    (Device.offline_after, the rule that decides online and offline). `timestamps` sorted ascending."""
    if end <= start:
        return 0.0
    grace = Device.offline_after(interval)
    covered = timedelta()
    for index, at in enumerate(timestamps):
        segment_end = at + grace
        if index + 1 < len(timestamps):
            segment_end = min(segment_end, timestamps[index + 1])
        segment_start, segment_end = max(at, start), min(segment_end, end)
        if segment_end > segment_start:
            covered += segment_end - segment_start
    return covered / (end - start)
