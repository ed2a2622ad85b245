"""Pure functions behind the monitoring panel: uptime and the SVG line chart."""

from datetime import UTC, datetime, timedelta

from devices.charts import line_chart
from devices.monitoring import RANGES, Point, uptime_fraction

START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = RANGES["24h"]


def test_uptime_is_full_when_heartbeats_arrive_every_interval():
    stamps = [START + timedelta(seconds=60 * i) for i in range(60)]
    assert uptime_fraction(stamps, interval=60, start=START, end=START + timedelta(hours=1)) == 1.0


def test_uptime_counts_a_gap_beyond_twice_the_interval_as_down():
    stamps = [START, START + timedelta(minutes=30)]
    fraction = uptime_fraction(stamps, interval=60, start=START, end=START + timedelta(hours=1))
    assert fraction == 4 / 60


def test_uptime_without_heartbeats_is_zero():
    assert uptime_fraction([], interval=60, start=START, end=START + timedelta(hours=1)) == 0.0


def points(values, chart_range=DAY):
    """Points at the given bucket indexes with the given averages: {index: value}."""
    return [
        Point(index=i, start=START + i * chart_range.bucket, average=v, minimum=v - 1, maximum=v + 1)
        for i, v in values.items()
    ]


def test_line_chart_scales_values_into_the_plot_and_keeps_min_max_latest():
    chart = line_chart(points({i: float(i) for i in range(10)}), DAY, start=START)
    [line] = chart.segments
    xs_ys = [tuple(map(float, p.split(","))) for p in line.split()]
    assert len(xs_ys) == 10
    assert xs_ys[0][1] < chart.plot_bottom
    assert xs_ys[-1][1] > chart.plot_top
    assert [x for x, _ in xs_ys] == sorted(x for x, _ in xs_ys)
    assert (chart.minimum, chart.maximum, chart.latest) == (-1.0, 10.0, 9.0)


def test_line_chart_of_no_points_is_none():
    assert line_chart([], DAY, start=START) is None


def test_line_chart_breaks_where_the_device_sent_nothing():
    chart = line_chart(points(dict.fromkeys([0, 1, 2, 7, 8, 9], 1.0)), DAY, start=START)
    assert [len(line.split()) for line in chart.segments] == [3, 3]


def test_each_bucket_has_a_title_with_its_time_and_values():
    chart = line_chart(points({0: 20.5, 1: 21.0}), DAY, start=START)
    assert chart.titles == [
        "2026-01-01 00:00 UTC: 20.5 (min 19.5, max 21.5)",
        "2026-01-01 00:05 UTC: 21 (min 20, max 22)",
    ]


def test_a_bucket_of_two_days_is_named_by_its_first_and_last():
    year = RANGES["1y"]
    chart = line_chart(points({0: 20.5}, year), year, start=START)
    assert chart.titles == ["2026-01-01 to 01-02 UTC: 20.5 (min 19.5, max 21.5)"]


def test_the_time_axis_is_labelled_at_round_instants_of_each_range():
    def labels(key):
        return [label for _, label in line_chart(points({0: 1.0}, RANGES[key]), RANGES[key], start=START).x_ticks]

    assert labels("24h") == ["00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00"]
    assert labels("7d") == ["Thu 01", "Fri 02", "Sat 03", "Sun 04", "Mon 05", "Tue 06", "Wed 07"]
    assert labels("30d") == ["Jan 01", "Jan 06", "Jan 11", "Jan 16", "Jan 21", "Jan 26"]  # Jan 31 is the end
    assert labels("1y")[:3] == ["Jan", "Feb", "Mar"]
    assert len(labels("1y")) == 12
