"""Write a development ``.env`` with generated secrets, once: ``python -m config.devenv``.

``make run`` calls it before anything else, so ``.venv/bin/python manage.py ...`` works from a
shell afterwards (the settings read ``.env``) with the same secrets the stack uses. An existing
``.env`` is never touched. Production sets these variables itself (see .env.example).
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"

TEMPLATE = """\
# Written by `make run` on its first start: development secrets for this checkout, so that
# `.venv/bin/python manage.py ...` works from a shell too. Not for production (see .env.example);
# keep FIELD_ENCRYPTION_KEY as long as var/ holds credentials encrypted with it.
SECRET_KEY={secret_key}
FIELD_ENCRYPTION_KEY={field_key}
"""


def write(path: Path = ENV_FILE) -> bool:
    """Create ``path`` with fresh secrets unless it exists; True when it was written."""
    if path.exists():
        return False
    text = TEMPLATE.format(
        secret_key=secrets.token_urlsafe(50), field_key=secrets.token_urlsafe(32)
    )
    path.write_text(text)
    path.chmod(0o600)
    return True


def main() -> int:
    if write():
        sys.stdout.write(f"Wrote {ENV_FILE} with generated development secrets.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
