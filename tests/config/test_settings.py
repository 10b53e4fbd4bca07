"""Settings read from the environment, each in a process of its own (settings load once)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def setting(name: str, **environment: str) -> str:
    """``repr()`` of a setting as ``config.settings`` computes it under ``environment``."""
    code = f"from config import settings; print(repr(settings.{name}))"
    answer = subprocess.run(  # noqa: S603 - the interpreter running the tests, fixed arguments
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "1", **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return answer.stdout.strip()


def test_x_forwarded_proto_is_trusted_only_behind_a_declared_proxy():
    assert setting("SECURE_PROXY_SSL_HEADER", API_NUM_PROXIES="0") == "None"
    assert setting("SECURE_PROXY_SSL_HEADER", API_NUM_PROXIES="1") == (
        "('HTTP_X_FORWARDED_PROTO', 'https')"
    )


def test_a_path_variable_set_but_empty_takes_its_default(tmp_path):
    data_dir = tmp_path / "data"

    assert setting("FEED_STORAGE_DIR", DATA_DIR=str(data_dir), FEED_STORAGE_DIR="") == repr(
        data_dir / "feeds"
    )
