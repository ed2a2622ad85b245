"""python manage.py simulate_devices --url http://127.0.0.1:8000 --count 10: activate demo units over HTTP."""

import json
from itertools import islice

from django.core.management.base import BaseCommand, CommandError

from accounts.management.commands.seed_demo import demo_units
from devices.simulator import simulate


class Command(BaseCommand):
    help = (
        "Activate approved units over HTTP like real devices (X25519 key pairs, derived keys), then send "
        "heartbeats. Units come from the demo data (seed_demo) or from --units, a file in the format of "
        "`seed_demo --list`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="Base URL of the portal, e.g. http://127.0.0.1:8000")
        parser.add_argument("--count", type=int, required=True, help="How many units to activate.")
        parser.add_argument("--concurrency", type=int, default=8, help="Devices talking at once (default 8).")
        parser.add_argument("--heartbeats", type=int, default=1, help="Heartbeats each device sends (default 1).")
        parser.add_argument("--units", help="JSON-lines file of units (default: the demo units).")

    def handle(self, *args, url, count, concurrency, heartbeats, units, **options):
        if count < 1 or concurrency < 1:
            raise CommandError("--count and --concurrency must be at least 1.")
        if units:
            with open(units) as lines:
                chosen = [json.loads(line) for line in islice(lines, count)]
        else:
            chosen = list(islice(demo_units(), count))
        if len(chosen) < count:
            raise CommandError(f"Only {len(chosen)} units are available; use --units for more.")
        result = simulate(url, chosen, concurrency=concurrency, heartbeats=heartbeats)
        self.stdout.write(
            f"activated {result.activated} of {count} in {result.elapsed:.2f} s "
            f"({result.rate:.1f}/s), p50 {result.percentile(50):.3f} s, p99 {result.percentile(99):.3f} s"
        )
        for code, number in sorted(result.failures.items()):
            self.stdout.write(self.style.ERROR(f"failed {number}: {code}"))
        if result.failures:
            raise CommandError("Some activations failed.")
