"""The web container's health probe: `python -m config.probe http://127.0.0.1:8000/healthz`.

Healthy (exit 0) when /healthz answers and the web process reaches the database, Redis and
the broker. A polling stall alone does not make the container unhealthy: /healthz reports it
(503) for people and uptime checks, but the web process is fine, and the worker and beat,
which wait for a healthy web before they start, are what gets polling going again.

The request names the first of ALLOWED_HOSTS as its Host (127.0.0.1 may not be allowed, and
Django would refuse it). Standard library only: it runs in the container without settings.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from urllib.parse import urlsplit

CONTAINER_PARTS = ("database", "redis", "broker")
DEFAULT_ALLOWED_HOSTS = "localhost,127.0.0.1,[::1]"
TIMEOUT_SECONDS = 8


def probe_host() -> str:
    """A host name Django accepts: the first of ALLOWED_HOSTS, as settings reads it."""
    hosts = [
        host.strip()
        for host in (os.environ.get("ALLOWED_HOSTS", "").strip() or DEFAULT_ALLOWED_HOSTS).split(
            ","
        )
        if host.strip()
    ]
    first = hosts[0] if hosts else "localhost"
    if first == "*":
        return "localhost"
    return first.lstrip(".")  # ".example.com" allows example.com and its subdomains


def probe(url: str) -> tuple[bool, str]:
    """(healthy, what to print) for the /healthz at `url`."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=TIMEOUT_SECONDS
    )
    try:
        connection.request("GET", parts.path or "/healthz", headers={"Host": probe_host()})
        response = connection.getresponse()
        body = response.read()
    except OSError as exc:
        return False, f"no answer from {url}: {exc}"
    finally:
        connection.close()
    try:
        report = json.loads(body)
    except ValueError:
        return False, f"{url} answered {response.status}, not the health report"
    failing = [part for part in CONTAINER_PARTS if not report.get(part, {}).get("ok")]
    if failing:
        return False, f"{url} answered {response.status}: failing {', '.join(failing)}"
    return True, f"{url} answered {response.status}: {report.get('status')}"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "http://127.0.0.1:8000/healthz"
    healthy, said = probe(url)
    print(said)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
