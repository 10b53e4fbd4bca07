"""``python manage.py sftp_bans [--all] [--lift ADDRESS ...]``: the SFTP defender's bans."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from sftpgateway import selectors, services
from sftpgateway.models import DefenderHost


class Command(BaseCommand):
    help = (
        "List the source addresses the SFTP gateway has banned, or lift bans. Lifting forgets "
        "the address (its points and ban count start from zero); running gateways let it in "
        "again within a few seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all",
            action="store_true",
            help="list every address the defender remembers, not only the banned ones",
        )
        parser.add_argument(
            "--lift", nargs="+", metavar="ADDRESS", default=[], help="lift these addresses' bans"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["lift"]:
            who = f"{getpass.getuser()} (manage.py sftp_bans)"
            for address in options["lift"]:
                if services.defender_ban_lift(address=address, lifted_by=who):
                    self.stdout.write(f"Lifted the ban of {address}")
                else:
                    self.stdout.write(f"{address} was not banned")
            return
        hosts: QuerySet[DefenderHost] = (
            DefenderHost.objects.order_by("-banned_until", "address")
            if options["all"]
            else selectors.banned_hosts()
        )
        now = timezone.now()
        rows = 0
        for host in hosts:
            rows += 1
            if host.banned_until is not None and host.banned_until > now:
                state = f"banned until {host.banned_until:%Y-%m-%d %H:%M:%S} UTC"
            else:
                state = "not banned"
            self.stdout.write(
                f"{host.address}\t{state}\tbans {host.ban_count}\t"
                f"refused {host.refused_count}\t{host.ban_reason}"
            )
        if not rows:
            self.stdout.write("No address is banned." if not options["all"] else "No address.")
