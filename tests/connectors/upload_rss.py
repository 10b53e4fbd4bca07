"""Upload a large generated file through a storage connector and report the process's peak
memory: ``python -m tests.connectors.upload_rss < spec.json`` (run by the memory tests, so that
nothing else in the test process counts).

The spec names the connector, its config and credentials, the path and the size in MiB. The
answer (JSON on stdout) gives the peak resident memory after a small warm-up upload and after
the large one, with what was delivered.
"""

from __future__ import annotations

import json
import os
import resource
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()

    from connectors.registry import get_connector
    from tests.connectors.storage_support import chunks

    spec = json.load(sys.stdin)
    connector_class = get_connector(spec["connector"])
    assert connector_class is not None
    store = connector_class(config=spec["config"], credentials=spec["credentials"])
    with store.session():  # type: ignore[attr-defined]
        with store.upload(spec["path"] + ".warm-up") as sink:  # type: ignore[attr-defined]
            for chunk in chunks(1024 * 1024):
                sink.write(chunk)
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with store.upload(spec["path"]) as sink:  # type: ignore[attr-defined]
            for chunk in chunks(spec["megabytes"] * 1024 * 1024):
                sink.write(chunk)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump(
        {"baseline_kib": baseline, "peak_kib": peak, "delivered": sink.delivered.as_dict()},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
