"""Former home of the hand-written checks of an integration's JSON parts.

The checks are the serializers now (integrations/serializers.py), so the OpenAPI schema and the
validation are one declaration. The defaults and limits they used live with the models; these
two names stay importable from here until the modules that import them from this place import
them from ``integrations.models``.
"""

from integrations.models import MAPPING_NAME_MAX_LENGTH, SYNC_SETTINGS_DEFAULTS

__all__ = ["MAPPING_NAME_MAX_LENGTH", "SYNC_SETTINGS_DEFAULTS"]
