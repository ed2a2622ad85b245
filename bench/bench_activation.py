"""Benchmark: device activations end to end against real gunicorn, Celery, PostgreSQL and Redis.

    .venv/bin/python bench/bench_activation.py [--units 5000] [--concurrency 64]

Creates the database bench_i5 afresh (BENCH_DATABASE_URL), approves the units (a third each of
serial + MAC, serial + claim code, and attested by the unit's own key, mixed), starts gunicorn (two
workers per core, threads for ?wait) on 127.0.0.1:13000 and one Celery worker on Redis db 5
(BENCH_REDIS_URL); then
1. measures the requests/s of the trivial JSON view /api/v1/health on that gunicorn (the baseline),
2. lets the simulator activate every unit at the given concurrency (first POST until the first
   heartbeat with the derived key is accepted) and prints activations/s, p50 and p99,
3. measures the baseline again, and prints the ratio to the better of the two; the goal is judged
   against the same view measured with wrk (after a warm-up, before and after the activations, the
   better of the two): the Python client spends far more CPU per request than wrk, which holds its
   baseline down more than the activations,
4. checks in the database that no activation was lost or doubled (and each attested unit used
   one request signature),
5. samples a portal page (the sign-in page, on a new connection each time, so any worker may answer)
   before and during the activations: devices waiting with ?wait=N hold web threads, and at most
   ACTIVATION_WAITERS_PER_PROCESS of them per process may (--waiters changes it for comparison);
   then once more during a storm that holds the waiters: --storm-units more devices, twice the
   concurrency, while the Celery worker is stopped (SIGSTOP) for STORM_HOLD seconds, so that every
   device waits its full ?wait=10 unless the cap turns it away,
and stops every process it started. For experiments, BENCH_CELERY_POOL, BENCH_CELERY_THREADS and
BENCH_GUNICORN_THREADS change the pools (keep gunicorn threads x workers + Celery threads under
PostgreSQL's max_connections: every thread keeps its own connection).
"""

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
import redis
from common import ensure_wrk, recreate_database, run_wrk, start_celery_worker, start_gunicorn, stop_processes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PORT = 13000
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_i5")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
URL = f"http://127.0.0.1:{PORT}"
BASELINE_SECONDS = 10
# One worker process with a pool of threads: the task spends about a third of its time waiting on
# PostgreSQL, and threads spare the prefork pool's per-task pipe traffic between the worker's parent
# and children (measured: 5.3-5.6 ms of worker CPU per activation against 7.2-7.7 with 4 processes).
CELERY_POOL = os.environ.get("BENCH_CELERY_POOL", "threads")
CELERY_THREADS = int(os.environ.get("BENCH_CELERY_THREADS", 8))
# Each worker reserves a few messages, so a thread never idles for a Redis round trip between tasks
# (measured when every activation sent its own message: 68 -> 100 activations/s). Safe with
# acks_late: unacknowledged messages go back to the queue if the worker dies.
CELERY_PREFETCH = 4
# Threads per gunicorn worker: a device waiting with ?wait=N holds one while its task runs.
GUNICORN_THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", 16))
GOALS = {"ratio": 0.07, "p99": 2.0}
# Threads per gunicorn worker that pages keep while devices wait: the waiter cap is the rest.
PAGE_THREADS = 4
PAGE = "/accounts/login/"
PAGE_INTERVAL = 0.1
STORM_HOLD = 6

ENV = os.environ | {
    "DJANGO_SETTINGS_MODULE": "config.settings.local",
    "DJANGO_DEBUG": "False",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "CELERY_QUEUE": "bench-i5",
    "DJANGO_LOG_LEVEL": "WARNING",
    # One simulator address sends every activation: lift the per-address limit for the run.
    "ACTIVATION_RATE_PER_ADDRESS": "1000000",
    "ACTIVATION_WAITERS_PER_PROCESS": str(GUNICORN_THREADS - PAGE_THREADS),
}


def fresh_database():
    recreate_database(DATABASE_URL, ENV)
    redis.Redis.from_url(REDIS_URL).flushdb()


def approve_units(count, units_file):
    """Approve `count` units with one INSERT per model, a third each of three bench models: serial +
    MAC, serial + claim code, and serial + MAC with factory attestation (a batch certificate of each
    unit's own key); write them, mixed, as `seed_demo --list` does."""
    os.environ.update(ENV)
    import django

    django.setup()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.factories import shipped_method
    from vendors.attestation import b64url_encode, certificate_message, public_key_text, sign
    from vendors.claim_codes import claim_code_generator, claim_code_hasher
    from vendors.models import ApprovedIdentity, Attestation, DeviceModel, ProductionBatch, Vendor

    vendor = Vendor.objects.create(name="Bench", slug="bench")
    models = {
        kind: DeviceModel.objects.create(
            vendor=vendor,
            name=f"Bench {kind}",
            slug=kind,
            claiming_method=shipped_method(method),
            attestation=attestation,
        )
        for kind, method, attestation in (
            ("unit", "serial-mac", Attestation.NONE),
            ("coded", "serial-claim-code", Attestation.NONE),
            ("attested", "serial-mac", Attestation.FACTORY_SIGNATURE),
        )
    }
    batch_key = Ed25519PrivateKey.generate()
    ProductionBatch.objects.create(
        device_model=models["attested"], name="bench-1", public_key=public_key_text(batch_key)
    )
    hash_code, generate_code = claim_code_hasher(), claim_code_generator()
    rows = []
    with open(units_file, "w") as out:
        for index in range(count):
            kind = list(models)[index % len(models)]
            serial = f"BN-{index:06d}"
            mac = ":".join(f"{b:02X}" for b in (2, 0xBE, 0, index >> 16, (index >> 8) & 255, index & 255))
            identifiers = (
                {"serial_number": serial} if kind == "coded" else {"serial_number": serial, "mac_address": mac}
            )
            unit = {"vendor": "bench", "model": kind, "identifiers": identifiers}
            identity = ApprovedIdentity(device_model=models[kind], identifier_1=serial)
            if kind == "coded":
                unit["claim_code"] = generate_code()
                identity.claim_code_hash = hash_code(unit["claim_code"])
            else:
                identity.identifier_2 = mac
            if kind == "attested":
                unit_key = Ed25519PrivateKey.generate()
                certified = certificate_message("bench", kind, "bench-1", identifiers, public_key_text(unit_key))
                unit["attestation"] = {
                    "batch": "bench-1",
                    "unit_public_key": public_key_text(unit_key),
                    "certificate": sign(batch_key, certified),
                }
                unit["unit_private_key"] = b64url_encode(unit_key.private_bytes_raw())
            rows.append(identity)
            out.write(json.dumps(unit) + "\n")
    ApprovedIdentity.objects.bulk_create(rows, batch_size=5000)
    # Settle the database before measuring: fresh statistics, and the set-up's writes flushed now
    # rather than by a checkpoint in the middle of a measurement.
    with psycopg.connect(DATABASE_URL, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
        connection.execute("CHECKPOINT")


def start_services(log_dir):
    gunicorn = start_gunicorn(
        PORT, ENV, threads=GUNICORN_THREADS, log=log_dir / "gunicorn.log", extra=["--keep-alive", "30"]
    )
    celery = start_celery_worker(
        ENV,
        pool=CELERY_POOL,
        concurrency=CELERY_THREADS,
        prefetch=CELERY_PREFETCH,
        log=log_dir / "celery.log",
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{URL}/api/v1/health", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn did not start; see {log_dir / 'gunicorn.log'}") from None
            time.sleep(0.3)
    return [gunicorn, celery]


def _hammer(args):
    """One client process: `threads` keep-alive connections GETting `path` until `seconds` pass; returns the count."""
    path, seconds, threads = args
    from devices.simulator import HttpClient

    client = HttpClient(URL)
    counts = [0] * threads
    stop_at = time.monotonic() + seconds

    def loop(slot):
        while time.monotonic() < stop_at:
            if client.request("GET", path).status == 200:
                counts[slot] += 1

    pool = [threading.Thread(target=loop, args=(slot,)) for slot in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts)


def baseline_rate(concurrency, processes=4):
    """Requests/s of the trivial JSON view, at the same concurrency, from several client processes."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        started = time.monotonic()
        total = sum(pool.map(_hammer, [("/api/v1/health", BASELINE_SECONDS, concurrency // processes)] * processes))
        return total / (time.monotonic() - started)


def trivial_with_wrk(concurrency, seconds=BASELINE_SECONDS):
    """Requests/s of the trivial JSON view measured with wrk; a run with any error is no baseline."""
    measured = run_wrk(f"{URL}/api/v1/health", seconds=seconds, connections=concurrency)
    if measured["errors"]:
        raise SystemExit(f"wrk had {measured['errors']} errors against /api/v1/health: no baseline")
    return measured["rate"]


class PageSampler(threading.Thread):
    """GETs the portal page every PAGE_INTERVAL seconds on a new connection until stopped; keeps
    each answer's seconds, and counts answers other than 200 and errors as failures."""

    def __init__(self):
        super().__init__(daemon=True)
        self.latencies, self.failures = [], 0
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(PAGE_INTERVAL):
            started = time.monotonic()
            try:
                with urllib.request.urlopen(f"{URL}{PAGE}", timeout=30) as response:
                    response.read()
                    ok = response.status == 200
            except OSError:
                ok = False
            self.latencies.append(time.monotonic() - started)
            self.failures += not ok

    def stop(self):
        self.stopped.set()
        self.join()
        return self

    def summary(self):
        q = statistics.quantiles(self.latencies, n=100, method="inclusive") if len(self.latencies) > 1 else [0] * 99
        return {"p50": q[49], "p99": q[98], "max": max(self.latencies, default=0), "count": len(self.latencies)}


def sample_pages(seconds):
    sampler = PageSampler()
    sampler.start()
    time.sleep(seconds)
    return sampler.stop()


def storm_with_the_worker_held(celery, units, concurrency):
    """Activate `units` while the Celery worker is stopped for the first STORM_HOLD seconds,
    sampling the portal page meanwhile; returns the simulation's result and the page sampler."""
    from devices.simulator import simulate

    pages = PageSampler()
    os.kill(celery.pid, signal.SIGSTOP)
    resume = threading.Timer(STORM_HOLD, os.kill, args=(celery.pid, signal.SIGCONT))
    pages.start()
    resume.start()
    try:
        result = simulate(URL, units, concurrency=concurrency, heartbeats=1, wait=10)
    finally:
        resume.join()
        os.kill(celery.pid, signal.SIGCONT)
    return {"result": result, "pages": pages.stop()}


def server_pids():
    """PostgreSQL's postmaster and the Redis server, found by name, for their CPU per activation."""
    pids = {}
    for name, pattern in (("postgres", "postgres -D"), ("redis", "redis-server")):
        found = subprocess.run(["pgrep", "-o", "-f", pattern], capture_output=True, text=True).stdout.split()
        if found:
            pids[name] = int(found[0])
    return pids


def cpu_seconds(pid):
    """CPU seconds (user + system) used so far by process `pid` and its children, from /proc (Linux)."""
    pending, total = [pid], 0.0
    while pending:
        pid = pending.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:  # exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pending += [int(child) for child in children]
    return total


def check_database(count):
    """Every unit activated exactly once: one key, one event, one assigned operation each, and one
    used request signature per attested unit."""
    with psycopg.connect(DATABASE_URL) as connection:
        query = lambda sql: connection.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "devices activated": query(
                "SELECT count(*) FROM devices_device WHERE activated_at IS NOT NULL AND key_hash <> ''"
            ),
            "activated events": query("SELECT count(*) FROM devices_deviceevent WHERE kind = 'activated'"),
            "devices with more than one event": query(
                "SELECT count(*) FROM (SELECT device_id FROM devices_deviceevent"
                " GROUP BY device_id HAVING count(*) > 1) AS doubled"
            ),
            "operations assigned": query("SELECT count(*) FROM devices_activationoperation WHERE status = 'assigned'"),
            "operations not assigned": query(
                "SELECT count(*) FROM devices_activationoperation WHERE status <> 'assigned'"
            ),
            "attested units activated": query(
                "SELECT count(*) FROM devices_device d JOIN vendors_devicemodel m ON m.id = d.device_model_id"
                " WHERE m.slug = 'attested' AND d.activated_at IS NOT NULL"
            ),
            "used attestation signatures": query("SELECT count(*) FROM devices_usedattestationsignature"),
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--waiters", type=int, help="devices that may wait per gunicorn worker (default: threads - 4)")
    parser.add_argument("--storm-units", type=int, default=1000)
    options = parser.parse_args()
    if options.waiters is not None:
        ENV["ACTIVATION_WAITERS_PER_PROCESS"] = str(options.waiters)

    log_dir = Path(tempfile.mkdtemp(prefix="bench_activation_"))
    units_file = log_dir / "units.jsonl"
    print(
        f"Preparing {DATABASE_URL}: migrate, approve {options.units} + {options.storm_units} units (logs in {log_dir})"
    )
    fresh_database()
    approve_units(options.units + options.storm_units, units_file)
    processes = start_services(log_dir)
    try:
        from devices.simulator import simulate

        workers = 2 * os.cpu_count()
        print(
            f"gunicorn: {workers} workers x {GUNICORN_THREADS} threads on {URL};"
            f" at most {ENV['ACTIVATION_WAITERS_PER_PROCESS']} devices wait per worker"
        )
        print(
            f"celery: 1 worker, {CELERY_POOL} pool of {CELERY_THREADS}, prefetch multiplier {CELERY_PREFETCH},"
            f" on {REDIS_URL}; PostgreSQL {DATABASE_URL}"
        )
        print("load average before the run (other work on this machine): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        ensure_wrk()
        # Until every gunicorn worker has booted and warmed up, the trivial view's rate is held down.
        trivial_with_wrk(options.concurrency, seconds=3)
        wrk_before = trivial_with_wrk(options.concurrency)
        print(f"trivial JSON view /api/v1/health with wrk: {wrk_before:,.0f} requests/s")
        baseline_before = baseline_rate(options.concurrency)
        print(
            f"trivial JSON view /api/v1/health: {baseline_before:,.0f} requests/s at concurrency {options.concurrency}"
        )

        idle_pages = sample_pages(5).summary()
        everyone = [json.loads(line) for line in units_file.read_text().splitlines()]
        units, storm_units = everyone[: options.units], everyone[options.units :]
        # CPU per activation is less at the mercy of other work on the machine than the rates are.
        measured = {"gunicorn": processes[0].pid, "celery": processes[1].pid} | server_pids()
        cpu_before = {name: cpu_seconds(pid) for name, pid in measured.items()}, time.process_time()
        storm_pages = PageSampler()
        storm_pages.start()
        result = simulate(URL, units, concurrency=options.concurrency, heartbeats=1, wait=10)
        storm_pages.stop()
        cpu_used = {name: cpu_seconds(pid) - cpu_before[0][name] for name, pid in measured.items()}
        cpu_used["this client"] = time.process_time() - cpu_before[1]
        p50, p99 = result.percentile(50), result.percentile(99)
        baseline_after = baseline_rate(options.concurrency)
        baseline = max(baseline_before, baseline_after)
        same_client_ratio = result.rate / baseline
        wrk_after = trivial_with_wrk(options.concurrency)
        wrk_baseline = max(wrk_before, wrk_after)
        ratio = result.rate / wrk_baseline
        print(
            f"activations: {result.activated} of {len(units)} in {result.elapsed:.1f} s = "
            f"{result.rate:,.1f} activations/s end to end "
            "(first POST until the first heartbeat with the derived key is accepted)"
        )
        print("load average after the run: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(f"latency: p50 {p50:.3f} s, p99 {p99:.3f} s; failures: {result.failures or 'none'}")
        # PostgreSQL's figure counts every database of the cluster: other work on the machine shows in it.
        print(
            "CPU per activation: "
            + ", ".join(f"{name} {seconds / len(units) * 1000:.2f} ms" for name, seconds in cpu_used.items())
        )
        print(
            f"trivial JSON view again after the activations: {baseline_after:,.0f} requests/s (same client);"
            f" the better one is {baseline:,.0f}"
        )
        print(f"trivial JSON view again with wrk: {wrk_after:,.0f} requests/s; the better one is {wrk_baseline:,.0f}")
        print(f"ratio activations/s : trivial requests/s, same Python client = {same_client_ratio:.1%}")
        print(f"ratio activations/s : trivial requests/s with wrk = {ratio:.1%} (goal >= {GOALS['ratio']:.0%})")
        pages = storm_pages.summary()
        print(
            f"portal page {PAGE} idle: p50 {idle_pages['p50']:.3f} s, p99 {idle_pages['p99']:.3f} s;"
            f" during the activations: p50 {pages['p50']:.3f} s, p99 {pages['p99']:.3f} s, max {pages['max']:.3f} s,"
            f" {storm_pages.failures} failed of {pages['count']}"
        )
        held = storm_with_the_worker_held(processes[1], storm_units, 2 * options.concurrency)
        held_pages = held["pages"].summary()
        print(
            f"storm while the worker is held {STORM_HOLD} s: {held['result'].activated} of {len(storm_units)} activated"
            f" at concurrency {2 * options.concurrency}, failures: {held['result'].failures or 'none'};"
            f" portal page p50 {held_pages['p50']:.3f} s, p99 {held_pages['p99']:.3f} s, max {held_pages['max']:.3f} s,"
            f" {held['pages'].failures} failed of {held_pages['count']}"
        )
        checks = check_database(len(everyone))
        attested = sum(unit["model"] == "attested" for unit in everyone)
        for name, value in checks.items():
            print(f"  database: {name}: {value}")
        intact = (
            checks["devices activated"] == checks["activated events"] == checks["operations assigned"] == len(everyone)
            and checks["devices with more than one event"] == 0
            and checks["operations not assigned"] == 0
            and checks["attested units activated"] == checks["used attestation signatures"] == attested
        )
        print(f"goal ratio >= {GOALS['ratio']:.0%}: {'met' if ratio >= GOALS['ratio'] else 'NOT met'}")
        print(f"goal p99 < 2 s: {'met' if p99 < GOALS['p99'] else 'NOT met'}")
        failures = result.failures or held["result"].failures
        print(f"goal none lost or doubled: {'met' if intact and not failures else 'NOT met'}")
        pages_answer = all(
            not sampler.failures and summary["p99"] < GOALS["p99"]
            for sampler, summary in ((storm_pages, pages), (held["pages"], held_pages))
        )
        verdict = "met" if pages_answer else "NOT met"
        print(f"goal pages answer during both storms (none failed, p99 < 2 s): {verdict}")
    finally:
        stop_processes(processes)


if __name__ == "__main__":
    main()
