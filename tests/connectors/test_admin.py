import pytest

from accounts.models import AuditEntry
from accounts.services import Actor
from connectors.models import Connection
from connectors.services import connection_create

pytestmark = pytest.mark.django_db

API_KEY = "sk_live_AdminNeverSeesThis"


@pytest.fixture
def connection(tenant, payments_connector):
    return connection_create(
        account=tenant.account,
        actor=Actor.system(),
        connector_id="test-payments",
        name="Payments",
        credentials={"apiKey": API_KEY},
    )


def test_changelist_and_change_page_show_keys_but_no_secret(admin_client, connection):
    changelist = admin_client.get("/admin/connectors/connection/?q=Acme")
    change = admin_client.get(f"/admin/connectors/connection/{connection.pk}/change/")

    assert changelist.status_code == 200
    assert "Payments" in changelist.content.decode()
    assert change.status_code == 200
    assert "apiKey" in change.content.decode()
    for page in (changelist, change):
        assert API_KEY not in page.content.decode()
        assert connection.credentials_encrypted not in page.content.decode()


def test_pausing_in_the_admin_is_audited_and_keeps_credentials(admin_client, connection):
    response = admin_client.post(
        f"/admin/connectors/connection/{connection.pk}/change/",
        {"name": "Payments (paused)", "status": "INACTIVE"},
    )

    assert response.status_code == 302
    connection.refresh_from_db()
    assert (connection.name, connection.status) == ("Payments (paused)", "INACTIVE")
    assert connection.stored_credentials() == {"apiKey": API_KEY}
    entry = AuditEntry.objects.get(resource_id=str(connection.pk), action="updated")
    assert entry.actor_type == "user"
    assert entry.changes["status"] == {"before": "ACTIVE", "after": "INACTIVE"}


def test_connections_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get("/admin/connectors/connection/add/").status_code == 403
    assert not Connection.objects.exists()
