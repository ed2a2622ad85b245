"""Pieces the bench scripts and the fault tests share: a scratch PostgreSQL database, Django set-up,
the production processes (gunicorn, Celery worker and beat) on a free port, a cookie-keeping HTTP
client, wrk runs and percentiles.

With BENCH_PGBOUNCER=1 in the environment, every gunicorn a bench starts reaches PostgreSQL through
a PgBouncer in transaction mode of its own (through_pgbouncer): run a bench both ways to see what
the pooler costs.
"""

import atexit
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bin.services import start_pgbouncer, stop_pgbouncer  # noqa: E402 - needs ROOT on the path

_pgbouncers = {}  # (host, port) of a PostgreSQL server -> the port of this process's PgBouncer in front of it


def django_env(database_url, redis_url, settings_module="config.settings.local"):
    """The environment a bench's Django processes run with: real services, DEBUG off."""
    return os.environ | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DJANGO_DEBUG": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
    }


def recreate_database(database_url, env):
    """Drop and create the bench database, then apply the migrations."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)


def insert_serial_mac_identities(conn, model_id, rows):
    """`rows` approved serial + MAC identities of the model `model_id`, set-based (INSERT ...
    SELECT): unit n is BN-<n, 8 digits> with MAC address 02:10:<n, 8 hex digits>."""
    conn.execute(
        """
        INSERT INTO vendors_approvedidentity (code, identifier_1, identifier_2, status, created_at, device_model_id)
        SELECT gen_random_uuid(), 'BN-' || lpad(i::text, 8, '0'),
               '02:10:' || concat_ws(':', substr(h, 1, 2), substr(h, 3, 2), substr(h, 5, 2), substr(h, 7, 2)),
               'approved', now(), %(model)s
        FROM generate_series(1, %(rows)s) AS i, LATERAL (SELECT lpad(upper(to_hex(i)), 8, '0') AS h) AS hex
        """,
        {"model": model_id, "rows": rows},
    )


def typed_serial_and_mac(unit):
    """Unit `unit`'s identifiers (insert_serial_mac_identities) as a person types them: lower
    case, dashes in the MAC address."""
    hex_digits = f"{unit:08X}".lower()
    mac = "02-10-" + "-".join(hex_digits[i : i + 2] for i in range(0, 8, 2))
    return {"serial_number": f"bn-{unit:08d}", "mac_address": mac}


def setup_django(env):
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def free_port(ports=None):
    """A port on 127.0.0.1 nothing listens on: the first of `ports`, or one the system picks."""
    if ports is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]
    for port in ports:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit(f"no free port in {ports.start}-{ports.stop - 1}")


def through_pgbouncer(env):
    """`env` with its DATABASE_URL through a PgBouncer in transaction mode (bin/services.py), one per
    PostgreSQL server, started on a free port the first time and stopped when the process ends;
    prepared statements and server-side cursors off, as behind any transaction pooler (DATABASE_POOLER)."""
    target = urlsplit(env["DATABASE_URL"])
    server = (target.hostname, target.port)
    if server not in _pgbouncers:
        directory = tempfile.mkdtemp(prefix="portal-pgbouncer-")
        start_pgbouncer(env["DATABASE_URL"], directory, port := free_port())
        atexit.register(stop_pgbouncer, directory)
        _pgbouncers[server] = port
    url = target._replace(netloc=f"{target.username or 'postgres'}@127.0.0.1:{_pgbouncers[server]}").geturl()
    return env | {"DATABASE_URL": url, "DATABASE_POOLER": "transaction", "DATABASE_SERVER_SIDE_BINDING": "false"}


def start_gunicorn(port, env, *, workers=None, threads=1, log=None, extra=()):
    """gunicorn serving the portal on 127.0.0.1:`port`, two workers per core unless told; with
    `threads` > 1 the gthread workers production runs. Output goes to the file `log`, if given.
    Through a PgBouncer with BENCH_PGBOUNCER=1 (through_pgbouncer)."""
    workers = workers or 2 * os.cpu_count()
    if os.environ.get("BENCH_PGBOUNCER") == "1":
        env = through_pgbouncer(env)
        print(f"gunicorn on :{port} reaches PostgreSQL through PgBouncer: {env['DATABASE_URL']}", flush=True)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        "--log-level=warning",
        *(["--worker-class=gthread", f"--threads={threads}"] if threads > 1 else []),
        *extra,
    ]
    server = _start(command, env, log)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"gunicorn did not start{f'; see {log}' if log else ''}")
        time.sleep(0.2)


def start_celery_worker(env, *, queue=None, pool="threads", concurrency=8, prefetch=4, log=None, extra=()):
    """A `celery worker` consuming `queue` (default: every queue the settings list, as production
    starts it), as production runs it (docs: a pool of threads)."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        *(["-Q", queue] if queue else []),
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--prefetch-multiplier",
        str(prefetch),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
        *extra,
    ]
    return _start(command, env, log)


def start_celery_beat(env, *, schedule_file, log=None):
    """`celery beat`, keeping its schedule in `schedule_file` rather than the working directory."""
    command = [sys.executable, "-m", "celery", "-A", "config", "beat", "--schedule", str(schedule_file)]
    return _start([*command, "--loglevel", "WARNING"], env, log)


def _start(command, env, log):
    if log is None:
        return subprocess.Popen(command, cwd=ROOT, env=env)
    with open(log, "a") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_processes(processes, timeout=20):
    """Terminate the processes, waiting up to `timeout` seconds for each before killing it."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Browser:
    """A cookie-keeping HTTP client; each request returns (status, headers, body, milliseconds)."""

    def __init__(self, port):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies = {}

    def request(self, method, path, form=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form | {"csrfmiddlewaretoken": self.cookies.get("csrftoken", "")})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            # The server closed the idle keep-alive connection: the request never reached it.
            self.connection.close()
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        content = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
        return response.status, response.headers, content, elapsed

    def sign_in(self, email, password):
        self.request("GET", "/accounts/login/")
        status, *_ = self.request("POST", "/accounts/login/", {"username": email, "password": password})
        if status != 302:
            raise SystemExit(f"sign-in failed with HTTP {status}")


def p95(values):
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def ensure_wrk():
    """wrk (Debian's package) generates the HTTP load; install it when missing."""
    if shutil.which("wrk"):
        return
    print("Installing Debian's wrk for the load ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)


def _seconds(text):
    value, unit = float(re.match(r"[\d.]+", text).group()), re.sub(r"[\d.]", "", text)
    return value * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(url, *, seconds, connections, threads=2, script=None):
    """Run wrk against `url`; returns {"rate": requests/s, "p99": seconds, "requests", "errors"}."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    # The distribution's line, not a percentage ending in 99 in the thread statistics (87.99%).
    p99 = re.search(r"^\s+99%\s+([\d.]+\w+)", output, re.MULTILINE)
    if not p99:
        raise SystemExit(f"wrk gave no latency distribution:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(map(int, socket_errors.groups())) if socket_errors else 0
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p99": _seconds(p99.group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "errors": errors,
    }


def load_average():
    return " ".join(f"{value:.1f}" for value in os.getloadavg())
