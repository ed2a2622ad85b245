"""Pure functions behind the monitoring panel: uptime and the SVG line chart."""

from datetime import UTC, datetime, timedelta

from devices.charts import line_chart
from devices.telemetry import uptime_fraction

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_uptime_is_full_when_heartbeats_arrive_every_interval():
    stamps = [START + timedelta(seconds=60 * i) for i in range(60)]
    assert uptime_fraction(stamps, interval=60, start=START, end=START + timedelta(hours=1)) == 1.0


def test_uptime_counts_a_gap_beyond_twice_the_interval_as_down():
    stamps = [START, START + timedelta(minutes=30)]
    fraction = uptime_fraction(stamps, interval=60, start=START, end=START + timedelta(hours=1))
    assert fraction == 4 / 60


def test_uptime_without_heartbeats_is_zero():
    assert uptime_fraction([], interval=60, start=START, end=START + timedelta(hours=1)) == 0.0


def test_line_chart_scales_values_into_the_box_and_keeps_min_max_latest():
    series = [(START + timedelta(minutes=i), float(i)) for i in range(10)]
    chart = line_chart(series, start=START, end=START + timedelta(minutes=10), width=100, height=50, buckets=10)
    [points] = chart.segments
    xs_ys = [tuple(map(float, p.split(","))) for p in points.split()]
    assert len(xs_ys) == 10
    assert xs_ys[0] == (0.0, 46.0)
    assert xs_ys[-1] == (100.0, 4.0)
    assert (chart.minimum, chart.maximum, chart.latest) == (0.0, 9.0, 9.0)


def test_line_chart_of_an_empty_series_is_none():
    assert line_chart([], start=START, end=START + timedelta(hours=1)) is None


def test_line_chart_breaks_where_the_device_sent_nothing():
    series = [(START + timedelta(minutes=i), 1.0) for i in list(range(3)) + list(range(7, 10))]
    chart = line_chart(series, start=START, end=START + timedelta(minutes=10), buckets=10)
    assert [len(points.split()) for points in chart.segments] == [3, 3]
