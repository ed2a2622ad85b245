"""Server-rendered SVG line charts (no JavaScript, nothing inline for the CSP to refuse)."""

from dataclasses import dataclass

MAX_POINTS = 288  # one point per 5 minutes over 24 hours is plenty for a 600-px chart


@dataclass(frozen=True)
class LineChart:
    # One SVG polyline "x,y x,y ..." per run of buckets with data, in a width x height box: the
    # line breaks where the device sent nothing, rather than drawing across the outage.
    segments: list
    width: int
    height: int
    minimum: float
    maximum: float
    latest: float


def downsample(series, start, end, buckets=MAX_POINTS):
    """Average `series` [(time, value)] into at most `buckets` equal time buckets."""
    span = (end - start).total_seconds() or 1.0
    sums = {}
    for at, value in series:
        bucket = min(buckets - 1, max(0, int((at - start).total_seconds() / span * buckets)))
        total, count = sums.get(bucket, (0.0, 0))
        sums[bucket] = (total + value, count + 1)
    return [(bucket, total / count) for bucket, (total, count) in sorted(sums.items())]


def line_chart(series, *, start, end, width=600, height=120, buckets=MAX_POINTS):
    """A LineChart of `series` between `start` and `end`, or None for an empty series."""
    if not series:
        return None
    averaged = downsample(series, start, end, buckets)
    values = [value for _, value in averaged]
    low, high = min(values), max(values)
    spread = (high - low) or 1.0
    pad = 4
    segments, previous = [], None
    for bucket, value in averaged:
        point = (
            f"{bucket / max(buckets - 1, 1) * width:.1f},{pad + (1 - (value - low) / spread) * (height - 2 * pad):.1f}"
        )
        if previous is None or bucket - previous > 1:
            segments.append([])
        segments[-1].append(point)
        previous = bucket
    return LineChart(
        segments=[" ".join(points) for points in segments],
        width=width,
        height=height,
        minimum=low,
        maximum=high,
        latest=series[-1][1],
    )
