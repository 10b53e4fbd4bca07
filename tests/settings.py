"""Settings for the test suite: production settings with test-only secrets and fast hashing."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key")
os.environ.setdefault("FIELD_ENCRYPTION_KEY", "test-field-encryption-key")
os.environ.setdefault("CACHE_KEY_PREFIX", f"railyard-test-{os.getpid()}")
# Tenants' connections reach loopback only (listeners the tests start), never another address;
# the scratch databases of the connector tests share the PostgreSQL server of the test database,
# so its port is allowed by name.
os.environ.setdefault("EGRESS_ALLOW", "127.0.0.0/8,::1,127.0.0.1:5432")
os.environ.setdefault("EGRESS_DENY", "0.0.0.0/0,::/0")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A file-backed SQLite test database, so a real worker process started by a test sees its rows.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
