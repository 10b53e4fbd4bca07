"""Parsing and vetting the public keys partners register (one OpenSSH ``authorized_keys`` line)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from paramiko import PKey

RSA_MIN_BITS = 2048
ACCEPTED_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


class PublicKeyError(ValueError):
    """The text is not an acceptable public key; the message says why, for the API client."""


@dataclass(frozen=True)
class ParsedPublicKey:
    key_type: str
    bits: int
    public_key: str
    fingerprint: str


def parse_public_key(text: str) -> ParsedPublicKey:
    """Parse ``"<type> <base64> [comment]"`` with paramiko and check its type and strength.

    Accepted: Ed25519, ECDSA (NIST P-256/384/521) and RSA of at least 2048 bits. The stored form
    drops the comment; the fingerprint is the SHA256 one OpenSSH prints (``SHA256:...``).
    """
    parts = text.strip().split()
    if len(parts) < 2:
        raise PublicKeyError(
            "Expected one OpenSSH public key line: '<type> <base64 key> [comment]'."
        )
    key_type, encoded = parts[0], parts[1]
    if key_type not in ACCEPTED_TYPES:
        raise PublicKeyError(
            f"Unsupported key type {key_type!r}; use ssh-ed25519, ecdsa-sha2-nistp256/384/521 "
            f"or ssh-rsa of at least {RSA_MIN_BITS} bits."
        )
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise PublicKeyError("The key is not valid base64.") from None
    try:
        key = PKey.from_type_string(key_type, blob)
    # Untrusted bytes can fail anywhere in paramiko's and cryptography's parsers (struct errors,
    # ValueError, SSHException, ...); any of them means the same thing to the client.
    except Exception:
        raise PublicKeyError(f"The base64 data is not a valid {key_type} public key.") from None
    if key.get_name() != key_type:
        raise PublicKeyError(f"The key data is a {key.get_name()} key, not {key_type}.")
    # paramiko pads short fields with zero bytes and ignores trailing ones: only a blob that
    # encodes back to itself is the key the partner meant.
    if key.asbytes() != blob:
        raise PublicKeyError(f"The base64 data is not a valid {key_type} public key.")
    bits = int(key.get_bits())
    if key_type == "ssh-rsa" and bits < RSA_MIN_BITS:
        raise PublicKeyError(f"RSA keys need at least {RSA_MIN_BITS} bits; this one has {bits}.")
    return ParsedPublicKey(
        key_type=key_type,
        bits=bits,
        public_key=f"{key_type} {key.get_base64()}",
        fingerprint=str(key.fingerprint),
    )
