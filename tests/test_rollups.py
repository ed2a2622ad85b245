"""Rollups per minute and per hour: equal to the raw heartbeats' aggregates, idempotent, and kept
for their own retention."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from devices.models import Heartbeat, MetricRollup, RollupProgress
from devices.rollups import build_rollups, floor_time, roll_up_heartbeats

from .factories import ClaimedDeviceFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 1, 30, 20, tzinfo=UTC)  # three hours back is the day before
Resolution = MetricRollup.Resolution


@pytest.fixture
def sample():
    """Three hours of irregular heartbeats of two devices, some with a metric missing or none."""
    rng = random.Random(17)
    devices = [ClaimedDeviceFactory(), ClaimedDeviceFactory()]
    beats = []
    for device in devices:
        at = NOW - timedelta(hours=3)
        while at < NOW:
            metrics = {"cpu": rng.uniform(0, 100), "temperature": rng.randint(15, 30)}
            if rng.random() < 0.2:
                metrics.pop("cpu")
            if rng.random() < 0.1:
                metrics = {}
            beats.append(Heartbeat(device=device, received_at=at, metrics=metrics))
            at += timedelta(seconds=rng.randint(10, 90), microseconds=rng.randint(0, 999_999))
    Heartbeat.objects.bulk_create(beats)
    return beats


def raw_aggregates(beats, resolution, until):
    """{(device, bucket start, metric): (count, min, max, sum)} computed from the rows in Python."""
    values = defaultdict(list)
    for beat in beats:
        if beat.received_at >= until:
            continue
        bucket = floor_time(beat.received_at, resolution)
        values[beat.device_id, bucket, MetricRollup.HEARTBEATS].append(None)
        for name, value in beat.metrics.items():
            values[beat.device_id, bucket, name].append(float(value))
    return {
        key: (len(v), None, None, None) if key[2] == MetricRollup.HEARTBEATS else (len(v), min(v), max(v), sum(v))
        for key, v in values.items()
    }


def stored(resolution):
    rows = MetricRollup.objects.filter(resolution=resolution).values_list(
        "device_id", "bucket_start", "metric", "count", "minimum", "maximum", "total"
    )
    return {(d, b, m): (c, lo, hi, t) for d, b, m, c, lo, hi, t in rows}


def assert_equal(rollups, expected):
    assert rollups.keys() == expected.keys()
    for key, (count, low, high, total) in expected.items():
        assert rollups[key][0] == count, key
        assert rollups[key][1:] == (pytest.approx(low), pytest.approx(high), pytest.approx(total)), key


def test_minute_hour_and_day_rollups_equal_the_raw_aggregates_of_the_closed_intervals(sample, settings):
    settings.ROLLUP_DELAY_SECONDS = 90
    reached = roll_up_heartbeats(NOW)
    # 01:30:20 less the delay is 01:28:50: minutes up to 01:28, hours up to 01:00, days up to 00:00.
    assert reached == {
        Resolution.MINUTE: NOW.replace(minute=28, second=0),
        Resolution.HOUR: NOW.replace(minute=0, second=0),
        Resolution.DAY: NOW.replace(hour=0, minute=0, second=0),
    }
    for resolution in Resolution:
        assert_equal(stored(resolution), raw_aggregates(sample, resolution, reached[resolution]))
    assert len(stored(Resolution.HOUR)) > 6  # two devices, two closed hours or more, each metric
    assert len(stored(Resolution.DAY)) == 6  # two devices, the day before, two metrics and the count


def test_rolling_up_an_interval_again_gives_the_same_rows(sample):
    roll_up_heartbeats(NOW)
    before = stored(Resolution.MINUTE)
    build_rollups(Resolution.MINUTE, NOW - timedelta(hours=3), NOW.replace(minute=28, second=0))
    assert stored(Resolution.MINUTE) == before
    assert roll_up_heartbeats(NOW) == roll_up_heartbeats(NOW)
    assert stored(Resolution.MINUTE) == before


def test_each_run_rolls_up_only_what_closed_since_the_last(sample):
    roll_up_heartbeats(NOW - timedelta(minutes=30))
    assert RollupProgress.objects.get(resolution=Resolution.MINUTE).rolled_up_until == NOW.replace(
        minute=58, hour=0, second=0
    )
    roll_up_heartbeats(NOW)
    assert_equal(stored(Resolution.MINUTE), raw_aggregates(sample, Resolution.MINUTE, NOW.replace(minute=28, second=0)))


def test_rollups_past_their_retention_are_deleted_and_outlive_the_raw_heartbeats(settings):
    settings.ROLLUP_MINUTE_RETENTION_HOURS = 48
    settings.ROLLUP_RETENTION_DAYS = 400
    device = ClaimedDeviceFactory()
    for days in (1, 3, 100, 401):
        MetricRollup.objects.create(
            device=device, resolution=Resolution.HOUR, bucket_start=NOW - timedelta(days=days), metric="cpu", count=1
        )
        MetricRollup.objects.create(
            device=device, resolution=Resolution.MINUTE, bucket_start=NOW - timedelta(days=days), metric="cpu", count=1
        )
    roll_up_heartbeats(NOW)
    ages = {
        (resolution, (NOW - at).days)
        for resolution, at in MetricRollup.objects.values_list("resolution", "bucket_start")
    }
    # Days are built from the hours within the heartbeats' retention (those of 1 and 3 days ago here).
    assert ages == {
        (Resolution.MINUTE, 1),
        (Resolution.HOUR, 1),
        (Resolution.HOUR, 3),
        (Resolution.HOUR, 100),
        (Resolution.DAY, 1),
        (Resolution.DAY, 3),
    }
