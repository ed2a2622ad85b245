"""Rollups of the heartbeats' metrics (MetricRollup): built over closed intervals, read by the charts.

Per device and metric, per minute (kept ROLLUP_MINUTE_RETENTION_HOURS, for the 24-hour chart), per
hour and per day (kept ROLLUP_RETENTION_DAYS, for the longer ranges): count, min, max and sum, so
that a chart of any range reads a few hundred points, and the averages, minima and maxima of coarser
buckets are exact. Minutes and hours are built from the heartbeats, days from the hours. The SQL of
building and reading them lives here, in one dialect per database vendor (PostgreSQL, and SQLite
for the embedded default).
"""

import contextlib
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from redis import RedisError

from .heartbeat_partitions import retention_start
from .models import Heartbeat, MetricRollup, RollupProgress

Resolution = MetricRollup.Resolution
# Intervals rolled up per statement: a task that falls behind (or the first run, which rolls up
# the heartbeats already kept) catches up in bounded transactions, each one recording its progress.
CHUNK = {Resolution.MINUTE: timedelta(hours=6), Resolution.HOUR: timedelta(days=2), Resolution.DAY: timedelta(days=30)}
# Seconds the cache keeps a chart's closed rollups at most (read_closed_rollups): an entry is found
# again only until its resolution's rollups move on, a minute for the 24 hours' minutes.
CLOSED_ROLLUPS_CACHE_SECONDS = {Resolution.MINUTE: 120, Resolution.HOUR: 3600, Resolution.DAY: 3600}
# Days are built from the hours' rollups (24 rows a metric), the others from the heartbeats.
BUILT_FROM = {Resolution.DAY: Resolution.HOUR}

ROLLUP_TABLE = MetricRollup._meta.db_table
HEARTBEAT_TABLE = Heartbeat._meta.db_table

# Each dialect: the start of the bucket of a timestamp column (for building), its index counted from
# a start (for reading), and the table of a heartbeat's numeric metrics. Widths are whole seconds
# written into the statement; GROUP BY names columns by position, so each expression is written once.
DIALECTS = {
    "postgresql": {
        "bucket_start": "date_bin(make_interval(secs => {width}), {column}, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
        "metrics": "CROSS JOIN LATERAL jsonb_each(h.metrics) AS m",
        "metric_value": "(m.value)::float8",
        "numeric": "jsonb_typeof(m.value) = 'number'",
        "bucket_index": "floor(extract(epoch FROM (bucket_start - %s)) / {width})::integer",
    },
    "sqlite": {
        "bucket_start": "datetime((CAST(strftime('%%s', {column}) AS INTEGER) / {width}) * {width}, 'unixepoch')",
        "metrics": "CROSS JOIN json_each(h.metrics) AS m",
        "metric_value": "m.value",
        "numeric": "m.type IN ('integer', 'real')",
        "bucket_index": (
            "(CAST(strftime('%%s', bucket_start) AS INTEGER) - CAST(strftime('%%s', %s) AS INTEGER)) / {width}"
        ),
    },
}

UPSERT = """
    ON CONFLICT (device_id, resolution, bucket_start, metric) DO UPDATE SET
        count = excluded.count, minimum = excluded.minimum, maximum = excluded.maximum, total = excluded.total
"""

BUILD_FROM_HEARTBEATS = """
    INSERT INTO {rollups} (device_id, resolution, bucket_start, metric, count, minimum, maximum, total)
    SELECT * FROM (
        SELECT h.device_id, {width} AS resolution, {bucket_start} AS bucket_start, m.key AS metric, count(*) AS count,
               min({metric_value}) AS minimum, max({metric_value}) AS maximum, sum({metric_value}) AS total
        FROM {heartbeats} h {metrics}
        WHERE h.received_at >= %s AND h.received_at < %s AND {numeric}
        GROUP BY 1, 3, 4
        UNION ALL
        SELECT h.device_id, {width}, {bucket_start}, '', count(*), NULL, NULL, NULL
        FROM {heartbeats} h
        WHERE h.received_at >= %s AND h.received_at < %s
        GROUP BY 1, 3
    ) AS buckets WHERE true
    {upsert}
"""

BUILD_FROM_ROLLUPS = """
    INSERT INTO {rollups} (device_id, resolution, bucket_start, metric, count, minimum, maximum, total)
    SELECT * FROM (
        SELECT device_id, {width} AS coarser, {bucket_start} AS coarser_start, metric, sum(count) AS beats,
               min(minimum) AS low, max(maximum) AS high, sum(total) AS summed
        FROM {rollups}
        WHERE resolution = {finer} AND bucket_start >= %s AND bucket_start < %s
        GROUP BY 1, 3, 4
    ) AS buckets WHERE true
    {upsert}
"""

# A chart's buckets from several resolutions at once, each over its own period (see read_rollups).
READ = """
    SELECT metric, {bucket_index} AS bucket, sum(count), min(minimum), max(maximum), sum(total)
    FROM {rollups}
    WHERE {periods}
    GROUP BY 1, 2
"""
# The device in each period, so that each is one range of the primary key's index.
PERIOD = "(device_id = %s AND resolution = %s AND bucket_start >= %s AND bucket_start < %s)"


def roll_up_heartbeats(now=None):
    """Build the rollups of every interval closed more than ROLLUP_DELAY_SECONDS ago and not yet
    rolled up, then delete those past their retention; returns {resolution: new rolled_up_until}.

    Set-based (one INSERT ... SELECT ... GROUP BY per chunk of intervals, for every device at once)
    and idempotent: an interval rolled up again gets the same rows (ON CONFLICT ... DO UPDATE), and
    each chunk records its progress in the transaction that writes it. The delay leaves the batched
    heartbeat writer time to store what it holds; a heartbeat stored later than that is in the raw
    table, not in its rollup. The first run starts from the oldest heartbeat kept; days follow the
    hours they are built from.
    """
    now = now or timezone.now()
    settled = now - timedelta(seconds=settings.ROLLUP_DELAY_SECONDS)
    reached = {}
    for resolution in (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY):
        keep_since = rollup_retention_start(resolution, now)
        until = floor_time(settled, resolution)
        if resolution in BUILT_FROM:
            until = min(until, floor_time(reached[BUILT_FROM[resolution]], resolution))
        first = floor_time(max(keep_since, retention_start(now)), resolution)
        RollupProgress.objects.get_or_create(resolution=resolution, defaults={"rolled_up_until": first})
        while True:
            # The progress row, locked, makes a run that overlaps another wait for it, then go on from
            # where it stopped.
            with transaction.atomic():
                progress = RollupProgress.objects.select_for_update().get(resolution=resolution)
                # Nothing older than the rollups' own retention is built: after a long stop, it is skipped.
                since = max(floor_time(keep_since, resolution), progress.rolled_up_until)
                if since >= until:
                    break
                progress.rolled_up_until = min(until, since + CHUNK[resolution])
                build_rollups(resolution, since, progress.rolled_up_until)
                progress.save(update_fields=["rolled_up_until"])
        MetricRollup.objects.filter(resolution=resolution, bucket_start__lt=keep_since).delete()
        reached[resolution] = since
    return reached


def build_rollups(resolution, start, end):
    """(Re)write the rollups of `resolution` of every device for the intervals in [start, end): from
    the heartbeats, or from the finer rollups it is BUILT_FROM."""
    dialect = DIALECTS[connection.vendor]
    width = int(resolution)
    finer = BUILT_FROM.get(resolution)
    column = "bucket_start" if finer else "h.received_at"
    parts = {key: value.format(width=width, column=column) for key, value in dialect.items()}
    template = BUILD_FROM_ROLLUPS if finer else BUILD_FROM_HEARTBEATS
    tables = {"rollups": ROLLUP_TABLE, "heartbeats": HEARTBEAT_TABLE, "upsert": UPSERT}
    sql = template.format(width=width, finer=int(finer or 0), **tables, **parts)
    low, high = (connection.ops.adapt_datetimefield_value(at) for at in (start, end))
    with connection.cursor() as cursor:
        cursor.execute(sql, [low, high] if finer else [low, high, low, high])


def read_rollups(device, periods, *, start, bucket):
    """{metric: {chart bucket index: [count, min, max, sum]}} of the device's rollups (min, max and
    sum None for HEARTBEATS), `periods` a list of (resolution, since, until): each resolution read
    over its own period, the chart's buckets `bucket` wide counted from `start`. One query, grouped
    in SQL."""
    periods = [(resolution, low, high) for resolution, low, high in periods if low < high]
    if not periods:
        return {}
    dialect = DIALECTS[connection.vendor]
    bucket_index = dialect["bucket_index"].format(width=int(bucket.total_seconds()))
    sql = READ.format(rollups=ROLLUP_TABLE, bucket_index=bucket_index, periods=" OR ".join([PERIOD] * len(periods)))
    adapt = connection.ops.adapt_datetimefield_value
    params = [adapt(start)]
    for resolution, low, high in periods:
        params += [device.pk, int(resolution), adapt(low), adapt(high)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    buckets = {}
    for metric, index, count, low, high, total in rows:
        buckets.setdefault(metric, {})[index] = [count, low, high, total]
    return buckets


def read_closed_rollups(device, period, *, start, bucket):
    """read_rollups of one period that ends where its resolution's rollups do, kept in the cache.

    The rollups of intervals already closed do not change: the entry is named by the device and its
    claim (a release deletes the history, a new claim names new entries), the period and the
    buckets, so it is never stale. It lapses once its rollups move on (the period's end with them);
    the timeout only frees what nobody asks for any more. The year's chart then reads a few dozen
    fresh rows a view instead of aggregating a year of them. Without Redis, or with it unreachable,
    the page reads them all from PostgreSQL."""
    resolution, low, high = period
    if low >= high:
        return {}
    # Without Redis the cache is a table that the rate limits' counters share: these entries
    # would cull them, and each write would send the rest of a replica page to the primary.
    if not settings.REDIS_URL:
        return read_rollups(device, [period], start=start, bucket=bucket)
    claim = device.claimed_at.timestamp() if device.claimed_at else 0
    instants = ":".join(str(at.timestamp()) for at in (low, high, start))
    key = f"closed-rollups:{device.pk}:{claim}:{int(resolution)}:{instants}:{int(bucket.total_seconds())}"
    try:
        buckets = cache.get(key)
    except RedisError:
        return read_rollups(device, [period], start=start, bucket=bucket)
    if buckets is None:
        buckets = read_rollups(device, [period], start=start, bucket=bucket)
        with contextlib.suppress(RedisError):
            cache.set(key, buckets, timeout=CLOSED_ROLLUPS_CACHE_SECONDS[resolution])
    return buckets


def merge_rollups(buckets, more):
    """Add the aggregates `more` (as read_rollups returns them) to `buckets`, in place."""
    for metric, aggregates in more.items():
        into = buckets.setdefault(metric, {})
        for index, aggregate in aggregates.items():
            add_aggregate(into, index, *aggregate)
    return buckets


def add_aggregate(aggregates, index, count, low, high, total):
    """Add count, min, max and sum (min, max and sum None for the heartbeat counts) to the
    aggregate `aggregates[index]`, in place."""
    aggregate = aggregates.get(index)
    if aggregate is None:
        aggregates[index] = [count, low, high, total]
        return
    aggregate[0] += count
    if total is not None:
        aggregate[1], aggregate[2] = min(aggregate[1], low), max(aggregate[2], high)
        aggregate[3] += total


def rolled_up_until():
    """{resolution: where its rollups end} (missing before the first run): raw heartbeats after."""
    return dict(RollupProgress.objects.values_list("resolution", "rolled_up_until"))


def rollup_retention_start(resolution, now):
    if resolution == Resolution.MINUTE:
        return now - timedelta(hours=settings.ROLLUP_MINUTE_RETENTION_HOURS)
    return now - timedelta(days=settings.ROLLUP_RETENTION_DAYS)


def floor_time(at, resolution):
    """`at` rounded down to a multiple of `resolution` seconds since the epoch (whole minutes,
    hours or days of UTC)."""
    seconds = int(at.timestamp()) // int(resolution) * int(resolution)
    return datetime.fromtimestamp(seconds, tz=UTC)
