"""Serve a stand-in region for demos, drills and benchmarks (see ``regions.fake``)."""

import signal

from django.core.management.base import BaseCommand

from regions.fake import FakeRegionServer


def _interrupt(*_):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Serve a fake region: GET /healthz, POST /_control/{fail,hang,recover}. SIGUSR1 makes it fail, SIGUSR2 recover."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--name", default="", help="Region name it reports (default: fake-<port>).")
        parser.add_argument("--delay", type=float, default=0.0, help="Seconds before each health answer.")
        parser.add_argument("--mode", choices=["ok", "fail", "hang"], default="ok")

    def handle(self, *args, **options):
        server = FakeRegionServer(
            name=options["name"] or f"fake-{options['port']}",
            host=options["host"],
            port=options["port"],
            delay=options["delay"],
            hang_limit=3600,
            verbose=options["verbosity"] > 1,
        )
        server.set_mode(options["mode"])
        signal.signal(signal.SIGUSR1, lambda *_: server.set_mode("fail"))
        signal.signal(signal.SIGUSR2, lambda *_: server.set_mode("ok"))
        signal.signal(signal.SIGTERM, _interrupt)
        self.stdout.write(f"fake region {server.name} on {server.base_url} (mode {server.mode})")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.recovered.set()
            server.server_close()
