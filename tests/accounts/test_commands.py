import os
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import Account, ApiKey, AuditEntry, Dealership, User

pytestmark = pytest.mark.django_db


def run_command(name: str, *args: str, **options: object) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command(name, *args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return tmp_path


@pytest.fixture
def no_admin_password(monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)


def bearer_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


# --- create_api_key ------------------------------------------------------------------------------


def test_create_api_key_prints_only_a_key_that_authenticates():
    stdout, stderr = run_command("create_api_key", "--account", "Lakeside Group", "--name", "ci")

    raw_key = stdout.strip()
    assert stdout == raw_key + "\n"
    assert raw_key.startswith("ry_")
    assert "Lakeside Group" in stderr
    response = bearer_client(raw_key).get("/api/v1/dealerships")
    assert response.status_code == 200, response.content
    assert response.json()["data"] == []
    api_key = ApiKey.objects.get()
    assert api_key.name == "ci"
    assert api_key.account.name == "Lakeside Group"
    entry = AuditEntry.objects.get(resource_id=str(api_key.pk))
    assert (entry.actor_type, entry.actor_name) == ("system", "cli")


def test_create_api_key_reuses_an_existing_account():
    run_command("create_api_key", "--account", "Lakeside Group")

    stdout, stderr = run_command("create_api_key", "--account", "Lakeside Group", "--name", "two")

    assert Account.objects.filter(name="Lakeside Group").count() == 1
    assert sorted(ApiKey.objects.values_list("name", flat=True)) == ["default", "two"]
    assert "Created account" not in stderr
    assert bearer_client(stdout.strip()).get("/api/v1/dealerships").status_code == 200


def test_create_api_key_key_sees_only_its_own_account(other_tenant):
    stdout, _ = run_command("create_api_key", "--account", "Lakeside Group")
    Dealership.objects.create(account=other_tenant.account, name="Theirs")

    response = bearer_client(stdout.strip()).get("/api/v1/dealerships")

    assert response.status_code == 200
    assert response.json()["data"] == []


def test_create_api_key_makes_the_first_key_admin_and_later_ones_write():
    first, first_stderr = run_command("create_api_key", "--account", "Lakeside Group")
    second, second_stderr = run_command("create_api_key", "--account", "Lakeside Group")

    assert "scope admin" in first_stderr
    assert "scope write" in second_stderr
    assert bearer_client(first.strip()).get("/api/v1/api-keys").status_code == 200
    refused = bearer_client(second.strip()).get("/api/v1/api-keys")
    assert refused.status_code == 403
    assert refused.json()["error"]["details"]["requiredScope"] == "admin"
    assert (
        bearer_client(second.strip())
        .post("/api/v1/dealerships", {"name": "Lakeside Ford"}, format="json")
        .status_code
        == 201
    )


def test_create_api_key_with_scope_read_makes_a_key_that_only_reads():
    stdout, stderr = run_command("create_api_key", "--account", "Lakeside Group", "--scope", "read")

    reader = bearer_client(stdout.strip())
    assert "scope read" in stderr
    assert reader.get("/api/v1/dealerships").status_code == 200
    assert reader.post("/api/v1/dealerships", {"name": "X"}, format="json").status_code == 403
    assert ApiKey.objects.get().scope == "read"


def test_create_api_key_refuses_an_unknown_scope():
    with pytest.raises(CommandError, match="invalid choice"):
        run_command("create_api_key", "--account", "Lakeside Group", "--scope", "root")

    assert not ApiKey.objects.exists()


# --- bootstrap_demo ------------------------------------------------------------------------------


def test_bootstrap_demo_creates_the_demo_tenant_and_a_private_key_file(data_dir, no_admin_password):
    stdout, _ = run_command("bootstrap_demo")

    account = Account.objects.get(name="Demo")
    dealership = Dealership.objects.get(account=account)
    assert (dealership.name, dealership.timezone) == ("Demo Motors", "America/Chicago")
    assert ApiKey.objects.get(account=account).name == "demo"
    key_file = data_dir / "demo-api-key"
    raw_key = key_file.read_text().strip()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert raw_key in stdout
    for url in (
        "http://localhost:8000/api/v1/",
        "http://localhost:8000/api/docs/",
        "http://localhost:8000/admin/",
        "http://localhost:8000/healthz",
    ):
        assert url in stdout
    assert f'curl -H "Authorization: Bearer {raw_key}"' in stdout
    response = bearer_client(raw_key).get("/api/v1/dealerships")
    assert response.status_code == 200
    assert [row["name"] for row in response.json()["data"]] == ["Demo Motors"]
    assert "scope admin" in stdout
    assert bearer_client(raw_key).get("/api/v1/api-keys").status_code == 200
    assert not User.objects.exists()


def test_bootstrap_demo_is_idempotent(data_dir, no_admin_password):
    first, _ = run_command("bootstrap_demo")

    second, second_stderr = run_command("bootstrap_demo")

    assert first == second
    assert second_stderr == ""
    assert Account.objects.count() == 1
    assert Dealership.objects.count() == 1
    assert ApiKey.objects.count() == 1


def test_bootstrap_demo_replaces_a_lost_key_file(data_dir, no_admin_password):
    run_command("bootstrap_demo")
    old_key = (data_dir / "demo-api-key").read_text().strip()
    (data_dir / "demo-api-key").unlink()

    stdout, _ = run_command("bootstrap_demo")

    new_key = (data_dir / "demo-api-key").read_text().strip()
    assert new_key != old_key
    assert new_key in stdout
    assert Account.objects.count() == 1
    assert Dealership.objects.count() == 1
    assert bearer_client(new_key).get("/api/v1/dealerships").status_code == 200


def test_bootstrap_demo_replaces_a_key_file_from_another_database(data_dir, no_admin_password):
    (data_dir / "demo-api-key").write_text("ry_deadbeef_not-a-key-of-this-database\n")

    stdout, _ = run_command("bootstrap_demo")

    raw_key = (data_dir / "demo-api-key").read_text().strip()
    assert raw_key != "ry_deadbeef_not-a-key-of-this-database"
    assert raw_key in stdout
    assert bearer_client(raw_key).get("/api/v1/dealerships").status_code == 200


def test_bootstrap_demo_creates_an_admin_only_with_a_password(data_dir, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "s3cret-demo")

    run_command("bootstrap_demo")
    run_command("bootstrap_demo")

    admin = User.objects.get()
    assert admin.username == "admin"
    assert admin.is_superuser
    assert admin.is_staff
    assert admin.check_password("s3cret-demo")
