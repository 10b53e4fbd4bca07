"""SSH key files for tests and benchmarks that log in with OpenSSH or paramiko."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def write_private_key(private: PrivateKeyTypes, path: Path) -> str:
    """Write ``private`` in OpenSSH format with mode 0600 (ssh refuses looser); return the
    public key line (``ssh-ed25519 AAAA...``)."""
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode()
