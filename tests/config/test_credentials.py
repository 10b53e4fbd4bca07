"""Which environment variables a credential reference may name."""

from __future__ import annotations

import pytest

from config.credentials import (
    UnresolvableReference,
    reference_allowed,
    references_check,
    references_resolve,
)


def test_the_default_patterns_allow_connector_variables_only(settings):
    assert settings.CREDENTIAL_ENV_ALLOW == "IOF_CONNECTOR_*,RAILYARD_CONNECTOR_*"
    assert reference_allowed("IOF_CONNECTOR_API_KEY")
    assert reference_allowed("RAILYARD_CONNECTOR_STRIPE_KEY")
    assert not reference_allowed("HOME")
    assert not reference_allowed("STRIPE_API_KEY")


@pytest.mark.parametrize(
    "name",
    [
        "SECRET_KEY",
        "FIELD_ENCRYPTION_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "EGRESS_ALLOW",
        "CREDENTIAL_ENV_ALLOW",
        "DJANGO_SETTINGS_MODULE",
        "PGPASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "AZURE_STORAGE_CONNECTION_STRING",
    ],
)
def test_variables_the_platform_reads_never_resolve_whatever_the_patterns(
    settings, monkeypatch, name
):
    # Given an operator who allows every name, and the variable set
    settings.CREDENTIAL_ENV_ALLOW = "*"
    monkeypatch.setenv(name, "platform-secret")

    # Then a reference to it does not resolve
    assert not reference_allowed(name)
    with pytest.raises(UnresolvableReference):
        references_resolve({"token": f"${{{name}}}"}, field="credentials")


def test_a_disallowed_and_an_unset_name_get_the_same_answer(monkeypatch):
    monkeypatch.setenv("FIELD_ENCRYPTION_KEY", "set-but-not-allowed")
    monkeypatch.delenv("IOF_CONNECTOR_NOPE", raising=False)

    names = ("FIELD_ENCRYPTION_KEY", "IOF_CONNECTOR_NOPE")
    answers = [references_check({"token": f"${{{name}}}"}, field="credentials") for name in names]

    assert [
        {field: [message.replace(name, "NAME") for message in messages]}
        for answer, name in zip(answers, names, strict=True)
        for field, messages in answer.items()
    ] == [
        {
            "credentials.token": [
                "credentials.token refers to ${NAME}, which is not an environment variable this "
                "server provides to connections (CREDENTIAL_ENV_ALLOW)."
            ]
        }
    ] * 2
    assert "set-but-not-allowed" not in str(answers)


def test_references_inside_nested_values_resolve(monkeypatch):
    monkeypatch.setenv("IOF_CONNECTOR_TOKEN", "t0ken")

    resolved = references_resolve(
        {"auth": {"header": "Bearer ${IOF_CONNECTOR_TOKEN}"}, "list": ["${IOF_CONNECTOR_TOKEN}"]},
        field="credentials",
    )

    assert resolved == {"auth": {"header": "Bearer t0ken"}, "list": ["t0ken"]}
