"""``manage.py bootstrap_demo``: a demo tenant to click through, safe to run on every start.

The raw demo key lives in ``DATA_DIR/demo-api-key`` (mode 0600) because the database only keeps its
hash: it is the one place the key can be read back from on the next run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.choices import ApiKeyScope
from accounts.models import Account, ApiKey, Dealership
from accounts.services import (
    Actor,
    account_get_or_create,
    api_key_create,
    dealership_create,
    hash_api_key,
    parse_api_key,
)

DEMO_ACCOUNT = "Demo"
DEMO_DEALERSHIP = "Demo Motors"
DEMO_TIMEZONE = "America/Chicago"
DEMO_KEY_NAME = "demo"
KEY_FILE_NAME = "demo-api-key"
ADMIN_USERNAME = "admin"
BASE_URL = "http://localhost:8000"


def demo_key_path() -> Path:
    return Path(settings.DATA_DIR) / KEY_FILE_NAME


def _read_valid_key(path: Path, account: Account) -> str | None:
    """The key stored in ``path`` if it still opens the demo account as ``admin``, else None.

    A key file can outlive its database (a PostgreSQL database dropped while DATA_DIR is kept), so
    the file alone is not proof that the key works.
    """
    try:
        raw_key = path.read_text().strip()
    except FileNotFoundError:
        return None
    parsed = parse_api_key(raw_key)
    if parsed is None:
        return None
    is_valid = ApiKey.objects.filter(
        account=account,
        prefix=parsed[0],
        key_hash=hash_api_key(raw_key),
        scope=ApiKeyScope.ADMIN,
        revoked_at__isnull=True,
    ).exists()
    return raw_key if is_valid else None


def _write_key(path: Path, raw_key: str) -> None:
    """Write the key readable by its owner only, atomically (no half-written file on a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(raw_key + "\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = (
        "Create (once) the demo account, its dealership and API key, then print the key and the "
        "URLs to try. Set DEMO_ADMIN_PASSWORD to also get a superuser 'admin'."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("bootstrap_demo")
        key_path = demo_key_path()
        with transaction.atomic():
            account, _ = account_get_or_create(name=DEMO_ACCOUNT)
            if not Dealership.objects.filter(account=account, name=DEMO_DEALERSHIP).exists():
                dealership_create(
                    account=account, actor=actor, name=DEMO_DEALERSHIP, timezone=DEMO_TIMEZONE
                )
                self.stderr.write(f"Created dealership {DEMO_DEALERSHIP!r}.")
            raw_key = _read_valid_key(key_path, account)
            if raw_key is None:
                # admin: the demo key is the one to try everything with, managing keys included.
                _, raw_key = api_key_create(
                    account=account, name=DEMO_KEY_NAME, scope=ApiKeyScope.ADMIN, actor=actor
                )
                # Written inside the transaction: if the write fails, no orphan key row remains.
                _write_key(key_path, raw_key)
                self.stderr.write(f"Created API key {DEMO_KEY_NAME!r}; saved to {key_path}.")
            admin_note = self._ensure_admin()

        lines = [
            "",
            "Railyard demo",
            f"  account:    {account.name} ({account.pk})",
            f"  API key:    {raw_key}   (scope admin; also in {key_path})",
            f"  API:        {BASE_URL}/api/v1/",
            f"  API docs:   {BASE_URL}/api/docs/",
            f"  admin:      {BASE_URL}/admin/" + (f"   ({admin_note})" if admin_note else ""),
            f"  health:     {BASE_URL}/healthz",
            "",
            "Try:",
            f'  curl -H "Authorization: Bearer {raw_key}" {BASE_URL}/api/v1/dealerships',
            "",
        ]
        self.stdout.write("\n".join(lines))

    def _ensure_admin(self) -> str:
        """A superuser 'admin' with DEMO_ADMIN_PASSWORD, only when that variable is set."""
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "")
        if not password:
            return "set DEMO_ADMIN_PASSWORD to get an 'admin' superuser"
        user_model = get_user_model()
        user = user_model.objects.filter(username=ADMIN_USERNAME).first()
        if user is None:
            user_model.objects.create_superuser(username=ADMIN_USERNAME, password=password)
            self.stderr.write(f"Created superuser {ADMIN_USERNAME!r}.")
        elif not user.check_password(password):
            # The environment is the source of truth: a changed variable changes the password.
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stderr.write(f"Updated the password of {ADMIN_USERNAME!r}.")
        return f"user {ADMIN_USERNAME!r}, password from DEMO_ADMIN_PASSWORD"
