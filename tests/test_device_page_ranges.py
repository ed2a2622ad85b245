"""The device page's monitoring ranges: 24 hours to a year, read from rollups and raw heartbeats,
with labelled time axes and a title per bucket, in a number of queries that does not grow."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from devices.actions import release_device
from devices.claims import claim_device
from devices.models import Heartbeat, MetricRollup, RollupProgress
from devices.monitoring import RANGES, chart_range, monitoring
from devices.rollups import build_rollups, floor_time, roll_up_heartbeats

from .factories import ApprovedIdentityFactory, ClaimedDeviceFactory

pytestmark = pytest.mark.django_db

Resolution = MetricRollup.Resolution


@pytest.fixture
def device(space):
    return ClaimedDeviceFactory(space=space, online=True, last_seen_at=timezone.now())


def page(client, device, query=""):
    response = client.get(reverse("device-detail", args=[device.code]) + query)
    assert response.status_code == 200
    return response.text


def monitoring_panel(html):
    return re.search(r'<section class="card shadow-sm mb-3" id="monitoring".*?</section>', html, re.S).group(0)


def cpu_rollup(device, resolution, at, **aggregates):
    return MetricRollup(device=device, resolution=resolution, bucket_start=at, metric="cpu", **aggregates)


def year_of_hourly_rollups(device, now):
    """A year of hourly and daily rollups of cpu (and the heartbeat counts), as the beat task leaves them."""
    until = floor_time(now, Resolution.HOUR)
    rows = []
    for hours in range(1, 365 * 24 + 1):
        at = until - timedelta(hours=hours)
        rows.append(cpu_rollup(device, Resolution.HOUR, at, count=60, minimum=1.0, maximum=3.0, total=120.0))
        rows.append(MetricRollup(device=device, resolution=Resolution.HOUR, bucket_start=at, metric="", count=60))
    MetricRollup.objects.bulk_create(rows)
    RollupProgress.objects.create(resolution=Resolution.HOUR, rolled_up_until=until)
    days_until = floor_time(until, Resolution.DAY)
    build_rollups(Resolution.DAY, days_until - timedelta(days=366), days_until)
    RollupProgress.objects.create(resolution=Resolution.DAY, rolled_up_until=days_until)
    RollupProgress.objects.create(resolution=Resolution.MINUTE, rolled_up_until=floor_time(now, Resolution.MINUTE))


# The last value of a repeated parameter counts, as Django's QueryDict.get says.
@pytest.mark.parametrize("query", ["", "?range=24h", "?range=bogus", "?range=", "?range=%00", "?range=7d&range=x"])
def test_no_range_or_an_unknown_one_is_the_24_hours(client, owner, device, query):
    client.force_login(owner)
    assert "Monitoring · last 24 hours" in page(client, device, query)


@pytest.mark.parametrize("key", list(RANGES))
def test_each_range_is_offered_and_shows_its_label(client, owner, device, key):
    client.force_login(owner)
    html = page(client, device, f"?range={key}")
    assert f"Monitoring · last {RANGES[key].label}" in html
    assert re.search(rf'<a class="nav-link[^"]* active"[^>]*href="\?range={key}#monitoring"', html)
    for other in RANGES:
        assert f'href="?range={other}#monitoring"' in html


def test_chart_range_parses_known_keys_only():
    assert [chart_range(key).key for key in ("24h", "7d", "30d", "1y", "2y", None, "")] == [
        "24h",
        "7d",
        "30d",
        "1y",
        "24h",
        "24h",
        "24h",
    ]


def test_the_year_is_not_offered_when_rollups_are_kept_for_less(settings):
    settings.ROLLUP_RETENTION_DAYS = 90
    assert chart_range("1y").key == "24h"
    assert chart_range("30d").key == "30d"


def test_the_year_reads_the_rollups_and_the_hour_since_from_raw_heartbeats(device):
    now = timezone.now()
    year_of_hourly_rollups(device, now)
    latest = Heartbeat.objects.create(device=device, received_at=now - timedelta(seconds=5), metrics={"cpu": 50.0})
    data = monitoring(device, RANGES["1y"], now=now)
    points = data["series"]["cpu"]
    assert 183 <= len(points) <= 184  # one every two days, the first and the last partly in the year
    assert points[0].average == pytest.approx(2.0)
    assert (points[-1].maximum, points[-1].start <= latest.received_at) == (50.0, True)
    assert data["uptime"] == pytest.approx(1.0, abs=0.01)


def test_the_page_draws_labelled_axes_and_a_title_per_bucket_without_inline_styles(client, owner, device):
    now = timezone.now()
    for minutes in range(1, 120):
        Heartbeat.objects.create(device=device, received_at=now - timedelta(minutes=minutes), metrics={"cpu": minutes})
    roll_up_heartbeats(now)
    client.force_login(owner)
    panel = monitoring_panel(page(client, device, "?range=24h"))
    assert len(re.findall(r'<text class="tick"[^>]*text-anchor="middle">\d\d:00</text>', panel)) == 8
    titles = re.findall(r"<title>([^<]*)</title>", panel)
    assert 24 <= len(titles) <= 25  # five-minute buckets over two hours
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC: [\d.]+( \(min \d+, max \d+\))?", t) for t in titles)
    assert sum(" (min " in title for title in titles) >= 23  # every full bucket: five different values
    assert "style=" not in panel
    assert "<script" not in panel


def test_the_page_takes_as_many_queries_with_a_year_of_history_as_with_none(client, owner, space):
    quiet, busy = ClaimedDeviceFactory(space=space), ClaimedDeviceFactory(space=space)
    year_of_hourly_rollups(busy, timezone.now())
    client.force_login(owner)
    counts = {}
    for key in RANGES:
        for device in (quiet, busy):
            with CaptureQueriesContext(connection) as queries:
                page(client, device, f"?range={key}")
            counts[key, device.pk] = len(queries)
    assert all(counts[key, quiet.pk] == counts[key, busy.pk] for key in RANGES), counts


def _reads_daily_rollups(query):
    return "devices_metricrollup" in query["sql"] and "resolution = 86400" in query["sql"]


def test_a_range_reads_its_closed_rollups_once_then_from_the_cache_until_they_move_on(device):
    now = timezone.now()
    year_of_hourly_rollups(device, now)
    with CaptureQueriesContext(connection) as first:
        before = monitoring(device, RANGES["1y"], now=now)
    with CaptureQueriesContext(connection) as again:
        assert monitoring(device, RANGES["1y"], now=now) == before
    assert len(again) == len(first) - 1
    assert not any(_reads_daily_rollups(query) for query in again)

    # A day later the daily rollups have moved on: read again, with the new day in.
    next_day = floor_time(now, Resolution.DAY)
    cpu_rollup(device, Resolution.DAY, next_day, count=1, minimum=9, maximum=9, total=9).save()
    RollupProgress.objects.filter(resolution=Resolution.DAY).update(rolled_up_until=next_day + timedelta(days=1))
    with CaptureQueriesContext(connection) as later:
        after = monitoring(device, RANGES["1y"], now=now + timedelta(days=1))
    assert any(_reads_daily_rollups(query) for query in later)
    assert max(point.maximum for point in after["series"]["cpu"]) == 9


def test_with_the_cache_unreachable_a_range_reads_its_rollups_from_postgresql(device, settings):
    now = timezone.now()
    year_of_hourly_rollups(device, now)
    expected = monitoring(device, RANGES["1y"], now=now)
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    with CaptureQueriesContext(connection) as queries:
        assert monitoring(device, RANGES["1y"], now=now) == expected
    assert any(_reads_daily_rollups(query) for query in queries)


def test_without_redis_a_range_reads_its_rollups_from_postgresql_at_every_view(device, settings):
    settings.REDIS_URL = ""
    now = timezone.now()
    year_of_hourly_rollups(device, now)
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            monitoring(device, RANGES["1y"], now=now)
        assert any(_reads_daily_rollups(query) for query in queries)


def test_a_released_and_claimed_again_device_shows_none_of_the_cached_history(space, owner, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    identifiers = {"serial_number": identity.identifier_1, "mac_address": identity.identifier_2}
    device = claim_device(space=space, device_model=device_model, identifiers=identifiers, name="Hub", actor=owner)
    now = timezone.now()
    year_of_hourly_rollups(device, now)
    assert monitoring(device, RANGES["1y"], now=now)["series"]["cpu"], "read, and kept in the cache"

    release_device(device, actor=owner)
    device = claim_device(space=space, device_model=device_model, identifiers=identifiers, name="Hub", actor=owner)
    assert monitoring(device, RANGES["1y"], now=now)["series"] == {}
