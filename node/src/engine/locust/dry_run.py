"""bfgg's dry-run plugin for Locust (`bfgg check --dry-run`).

Loaded ahead of the locustfile (`-f bfgg_dry_run.py,locustfile.py`) for a
short run with one user (any LoadTestShape of the locustfile is set aside):
prints every request on stdout as a line `bfgg-dry-run {json}` with the
User class, the request name, method, URL, status, time and failure, which
bfgg prints like its own engine's dry run.
"""

import json
import sys

from locust import events


@events.init.add_listener
def _on_init(environment, **_kwargs):
    # One user, whatever shape the locustfile brings.
    environment.shape_class = None
    for cls in environment.user_classes:
        original = cls.context

        def context(self, _original=original):
            return {**(_original(self) or {}), "bfgg_user": type(self).__name__}

        cls.context = context


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, response=None, context=None,
                exception=None, url=None, **_kwargs):
    status = getattr(response, "status_code", None)
    line = {
        "user": (context or {}).get("bfgg_user", ""),
        "name": name,
        "method": request_type,
        "url": url or "",
        "status": status if isinstance(status, int) and status > 0 else None,
        "ms": response_time or 0.0,
        "length": response_length or 0,
        "error": None if exception is None else str(exception),
    }
    sys.stdout.write("bfgg-dry-run " + json.dumps(line) + "\n")
    sys.stdout.flush()
