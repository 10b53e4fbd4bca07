"""``manage.py create_api_key --account NAME [--name LABEL] [--scope read|write|admin]``: mint an
API key from the shell.

Only the raw key goes to stdout, so a script can capture it
(``KEY=$(python manage.py create_api_key --account Acme)``); everything meant for a person goes to
stderr.

Without ``--scope``, the account's first key (while it has no active ``admin`` key) is ``admin``,
so the tenant can manage its own keys from the API; later keys are ``write``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.choices import ApiKeyScope
from accounts.models import Account, ApiKey
from accounts.services import Actor, account_get_or_create, api_key_create


def default_scope(account: Account) -> ApiKeyScope:
    """``admin`` while the account has no active admin key, else ``write``."""
    has_admin = ApiKey.objects.filter(
        account=account, scope=ApiKeyScope.ADMIN, revoked_at__isnull=True
    ).exists()
    return ApiKeyScope.WRITE if has_admin else ApiKeyScope.ADMIN


class Command(BaseCommand):
    help = (
        "Create an API key for an account (creating the account if it does not exist) and print "
        "the raw key, alone, on stdout. The key is never shown again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="Account name; created if new.")
        parser.add_argument("--name", default="default", help="Label of the key.")
        parser.add_argument(
            "--scope",
            choices=ApiKeyScope.values,
            help=(
                "read (GET only), write (also changes) or admin (also manages API keys). "
                "Default: admin for an account without an active admin key, else write."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account_name = options["account"].strip()
        label = options["name"].strip()
        if not account_name:
            raise CommandError("--account must not be blank.")
        if not label:
            raise CommandError("--name must not be blank.")

        account, created = account_get_or_create(name=account_name)
        if created:
            self.stderr.write(f"Created account {account.name!r} ({account.pk}).")
        scope = options["scope"] or default_scope(account)
        api_key, raw_key = api_key_create(
            account=account, name=label, scope=scope, actor=Actor.system("cli")
        )
        self.stderr.write(
            f"Created API key {api_key.name!r} (ry_{api_key.prefix}_…, scope {api_key.scope}) "
            f"for account {account.name!r}. Store it now: it is not shown again."
        )
        self.stdout.write(raw_key)
