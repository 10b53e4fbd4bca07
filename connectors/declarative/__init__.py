"""Declarative connectors: REST sources and destinations described by a manifest (YAML or JSON)
instead of a Python class, checked against ``manifest.schema.json`` and run by one engine
(``connector.py``).

``manifest.py`` reads and checks a manifest, ``templates.py`` fills in its ``{{ ... }}`` values,
``auth.py`` authenticates its requests, and ``shipped.py`` registers the manifests in
``manifests/`` in the connector catalog when the app starts.
"""
