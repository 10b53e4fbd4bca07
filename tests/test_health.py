import pytest
from django.db import connections
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_is_ok_when_database_and_redis_answer():
    response = Client().get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "ok"}
    assert "down" not in body


def test_healthz_is_503_naming_redis_when_redis_is_unreachable(settings):
    settings.REDIS_URL = "unix:///tmp/railyard-no-such-dir/redis.sock"

    response = Client().get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["down"] == ["redis"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] != "ok"


def test_healthz_is_503_naming_database_when_the_database_fails(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("database is down")

    monkeypatch.setattr(type(connections["default"]), "cursor", refuse)

    response = Client().get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["database"]
    assert body["checks"]["redis"] == "ok"
    assert "database is down" in body["checks"]["database"]


def test_healthz_only_answers_get():
    response = Client().post("/healthz")

    assert response.status_code == 405
