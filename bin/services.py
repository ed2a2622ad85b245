"""Make sure PostgreSQL and Redis answer for the tests; print shell exports for bin/test to eval.

When the given server is not reachable, start a private one from the installed binaries
(initdb/pg_ctl, redis-server) under /tmp; if there are none, stop with one line saying what to install.
Unless TEST_PGBOUNCER=off, the tests then reach PostgreSQL through a private PgBouncer in transaction
mode (start_pgbouncer), as a deployment behind a pooler does.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

PRIVATE_PG_PORT = 55432
PRIVATE_REDIS_PORT = 56379
PRIVATE_PGBOUNCER_PORT = 56432
PRIVATE_PGBOUNCER_DIRECTORY = "/tmp/portal-test-pgbouncer"
PGBOUNCER = "/usr/sbin/pgbouncer"


def reachable(host, port):
    try:
        with socket.create_connection((host or "127.0.0.1", port or 0), timeout=1):
            return True
    except OSError:
        return False


def fail(message):
    print(f"echo {message!r} >&2; exit 1")
    sys.exit(0)


def as_postgres(args):
    # PostgreSQL refuses to run as root; run its binaries as the postgres user when we are root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def start_private_postgres():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    if not initdb:
        fail("PostgreSQL is not reachable and not installed: apt-get install -y postgresql, then run bin/test again.")
    bindir = os.path.dirname(initdb)
    datadir = "/tmp/portal-test-postgres"
    if os.geteuid() == 0:
        pwd.getpwnam("postgres")
    if not os.path.exists(os.path.join(datadir, "PG_VERSION")):
        os.makedirs(datadir, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(datadir, "postgres", "postgres")
        subprocess.run(
            as_postgres([initdb, "-D", datadir, "-U", "postgres", "--auth=trust"]), check=True, capture_output=True
        )
    if not reachable("127.0.0.1", PRIVATE_PG_PORT):
        subprocess.run(
            as_postgres(
                [
                    os.path.join(bindir, "pg_ctl"),
                    "-D",
                    datadir,
                    "-l",
                    os.path.join(datadir, "server.log"),
                    "-o",
                    f"-p {PRIVATE_PG_PORT} -k /tmp -c listen_addresses=127.0.0.1",
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
    return f"postgres://postgres@127.0.0.1:{PRIVATE_PG_PORT}/portal"


def start_private_redis(db):
    server = shutil.which("redis-server")
    if not server:
        fail("Redis is not reachable and not installed: apt-get install -y redis-server, then run bin/test again.")
    if not reachable("127.0.0.1", PRIVATE_REDIS_PORT):
        subprocess.run(
            [server, "--port", str(PRIVATE_REDIS_PORT), "--bind", "127.0.0.1", "--daemonize", "yes", "--save", ""],
            check=True,
            capture_output=True,
        )
        for _ in range(50):
            if reachable("127.0.0.1", PRIVATE_REDIS_PORT):
                break
            time.sleep(0.1)
    return f"redis://127.0.0.1:{PRIVATE_REDIS_PORT}/{db}"


def _pgbouncer_ini(database_url, directory, port):
    target = urlsplit(database_url)
    server = f"host={target.hostname or '127.0.0.1'} port={target.port or 5432}"
    if target.password:
        server += f" password={target.password}"
    return f"""[databases]
* = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
admin_users = {target.username or "postgres"}
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 30
ignore_startup_parameters = extra_float_digits
; A client waits for a server connection this long at most: with PostgreSQL down, the portal answers
; 503 within seconds instead of hanging (PgBouncer's default is 120 s), and tries PostgreSQL again
; a tenth of a second after a failed attempt (default 15 s).
query_wait_timeout = 5
server_connect_timeout = 2
server_login_retry = 0.1
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""


def start_pgbouncer(database_url, directory, port):
    """Start PgBouncer (pool_mode=transaction, trust authentication, every database) on
    127.0.0.1:`port` in front of the PostgreSQL server of `database_url`, its ini, user list, log
    and pid file in `directory`; one already running there for the same server is kept. Returns
    `database_url` through it. Its admin console is the database `pgbouncer` (pooler_admin_url)."""
    directory = str(directory)
    target = urlsplit(database_url)
    ini = _pgbouncer_ini(database_url, directory, port)
    ini_path = os.path.join(directory, "pgbouncer.ini")
    pid_path = os.path.join(directory, "pgbouncer.pid")
    unchanged = os.path.exists(ini_path) and Path(ini_path).read_text() == ini
    if unchanged and reachable("127.0.0.1", port):
        return target._replace(netloc=f"{target.username or 'postgres'}@127.0.0.1:{port}").geturl()
    stop_pgbouncer(directory)
    os.makedirs(directory, exist_ok=True)
    with open(ini_path, "w") as file:
        file.write(ini)
    with open(os.path.join(directory, "userlist.txt"), "w") as file:
        file.write(f'"{target.username or "postgres"}" ""\n')
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root.
        for path in (directory, ini_path, os.path.join(directory, "userlist.txt")):
            shutil.chown(path, "postgres", "postgres")
    subprocess.run(as_postgres([PGBOUNCER, "-q", "-d", ini_path]), check=True, capture_output=True)
    for _ in range(100):
        if reachable("127.0.0.1", port) and os.path.exists(pid_path):
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"pgbouncer did not start: see {directory}/pgbouncer.log")
    return target._replace(netloc=f"{target.username or 'postgres'}@127.0.0.1:{port}").geturl()


def stop_pgbouncer(directory):
    """Stop the PgBouncer that start_pgbouncer started in `directory`, if it runs."""
    try:
        with open(os.path.join(str(directory), "pgbouncer.pid")) as file:
            pid = int(file.read().strip())
        os.kill(pid, 15)
    except (OSError, ValueError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)


def main(database_url, redis_url):
    pg = urlsplit(database_url)
    if not reachable(pg.hostname, pg.port or 5432):
        database_url = start_private_postgres()
        print(f"echo 'PostgreSQL was not reachable; started a private one on port {PRIVATE_PG_PORT}.' >&2")
    redis = urlsplit(redis_url)
    if not reachable(redis.hostname, redis.port or 6379):
        redis_url = start_private_redis(redis.path.strip("/") or "0")
        print(f"echo 'Redis was not reachable; started a private one on port {PRIVATE_REDIS_PORT}.' >&2")
    if os.environ.get("TEST_PGBOUNCER", "on") != "off":
        if not os.path.exists(PGBOUNCER):
            fail("PgBouncer is not installed: apt-get install -y pgbouncer (or TEST_PGBOUNCER=off), then bin/test.")
        database_url = start_pgbouncer(database_url, PRIVATE_PGBOUNCER_DIRECTORY, PRIVATE_PGBOUNCER_PORT)
        # Transaction pooling: no prepared statements, no server-side cursors (config/settings/base.py).
        print("export DATABASE_POOLER=transaction DATABASE_SERVER_SIDE_BINDING=false")
    print(f"export DATABASE_URL={database_url!r} REDIS_URL={redis_url!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
