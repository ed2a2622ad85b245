"""Make sure PostgreSQL and Redis answer for the tests; print shell exports for bin/test to eval.

When the given server is not reachable, start a private one from the installed binaries
(initdb/pg_ctl, redis-server) under /tmp; if there are none, stop with one line saying what to install.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

PRIVATE_PG_PORT = 55432
PRIVATE_REDIS_PORT = 56379


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


def main(database_url, redis_url):
    pg = urlsplit(database_url)
    if not reachable(pg.hostname, pg.port or 5432):
        database_url = start_private_postgres()
        print(f"echo 'PostgreSQL was not reachable; started a private one on port {PRIVATE_PG_PORT}.' >&2")
    redis = urlsplit(redis_url)
    if not reachable(redis.hostname, redis.port or 6379):
        redis_url = start_private_redis(redis.path.strip("/") or "0")
        print(f"echo 'Redis was not reachable; started a private one on port {PRIVATE_REDIS_PORT}.' >&2")
    print(f"export DATABASE_URL={database_url!r} REDIS_URL={redis_url!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
