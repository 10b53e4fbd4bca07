"""Model fields of the sync engine."""

from __future__ import annotations

import json
from typing import Any

from django.db import models


class JSONTextField(models.Field):
    """A JSON value stored as its text.

    Records are written and read whole, never queried inside, so the store keeps their JSON as
    text: PostgreSQL copies text without parsing it, where ``jsonb`` costs about a third more per
    row to load (and ``json`` a fifth). Python sees the decoded value, as with ``JSONField``.
    """

    def get_internal_type(self) -> str:
        return "TextField"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or not isinstance(value, str):
            return value
        return json.loads(value)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return value

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def value_to_string(self, obj: models.Model) -> str:
        return str(self.get_prep_value(self.value_from_object(obj)))
