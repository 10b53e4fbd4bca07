"""``python manage.py run_sftp_gateway [--host H] [--port P]``: the SFTP gateway process."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from sftpgateway.server import SftpGateway, host_key_load_or_create, host_key_path


class Command(BaseCommand):
    help = "Run the SFTP gateway: partners log in and upload their feeds."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="0.0.0.0", help="address to listen on")  # noqa: S104
        parser.add_argument(
            "--port", type=int, default=None, help="port to listen on (default SFTP_PORT)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # paramiko logs every connection at INFO; the gateway logs what matters itself.
        paramiko_logger = logging.getLogger("paramiko")
        if paramiko_logger.level == logging.NOTSET:
            paramiko_logger.setLevel(logging.WARNING)
        port = settings.SFTP_PORT if options["port"] is None else options["port"]
        path = host_key_path()
        host_key = host_key_load_or_create(path)
        gateway = SftpGateway(host=options["host"], port=port, host_key=host_key)
        stop = threading.Event()

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        host, bound_port = gateway.start()
        self.stdout.write(f"Host key {path}: {host_key.get_name()} {host_key.fingerprint}")
        self.stdout.write(f"SFTP gateway listening on {host}:{bound_port}")
        self.stdout.flush()
        stop.wait()
        grace = float(settings.SFTP_SHUTDOWN_GRACE_SECONDS)
        self.stdout.write(f"Stopping: no new connections; uploads get up to {grace:g} s to finish")
        self.stdout.flush()
        gateway.stop(grace=grace)
        self.stdout.write("SFTP gateway stopped")
