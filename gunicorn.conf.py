"""Gunicorn settings of the web process: the one place for them, used by the Procfile, the
Dockerfile and docker-compose.yml (``gunicorn config.wsgi:application --config gunicorn.conf.py``;
gunicorn also reads this file by itself when started from this directory). Where to listen stays
on each command line.

Request limits enforced here, before Django sees a request, are answered with gunicorn's own
plain HTML error pages (it has no hook to change them); each is set well above anything the API
needs, so a client meets them only with a malformed or hostile request:

- ``limit_request_line``: the request line (method, path with query string, protocol) is at most
  8190 bytes, gunicorn's maximum; longer is ``414 URI Too Long``. The API's longest legitimate
  URL (a list with every filter and a sort) is a few hundred bytes.
- ``limit_request_fields``: at most 100 header fields; more is ``431``.
- ``limit_request_field_size``: each header field is at most 8190 bytes; longer is ``431``. An API
  key's ``Authorization`` header is about 60 bytes, the admin's cookies a few hundred.

Everything after that is answered by Railyard in its error envelope: a body over
``API_MAX_BODY_BYTES`` (413, also when sent chunked), NUL characters, JSON nested too deeply,
a ``Host`` not in ``ALLOWED_HOSTS`` (400), unknown paths (404).

Any setting can be overridden without editing this file through gunicorn's ``GUNICORN_CMD_ARGS``
(for example ``GUNICORN_CMD_ARGS="--workers 4"``); ``WEB_CONCURRENCY`` sets the worker count.
"""

import os

wsgi_app = "config.wsgi:application"

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))

# A worker silent this long is killed and its request answered by nothing (the proxy's 502). A
# connection test runs inside the request and waits at most its connector's timeouts (HTTP 30 s,
# SFTP 15 s to connect and 60 s per request), so this stays above them.
timeout = 90
graceful_timeout = 30
keepalive = 5

limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

accesslog = "-"
