"""Requests one URL COUNT times over one keep-alive connection, one at a time,
starting one every PERIOD seconds (as an agent's probes start on a schedule
rather than back to back); used by tests/bench_blackbox.sh.

    python3 tests/pace_requests.py URL COUNT PERIOD

Exits non-zero, naming the request, on a connection error or a non-200 answer.
"""

import http.client
import sys
import time
import urllib.parse

TIMEOUT_SECONDS = 10


def main() -> int:
    url, count, period = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    parts = urllib.parse.urlsplit(url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_SECONDS)
    next_start = time.monotonic()
    for number in range(1, count + 1):
        time.sleep(max(0.0, next_start - time.monotonic()))
        # A late request delays the next ones rather than bunching them.
        next_start = max(next_start, time.monotonic()) + period
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as error:
            print(f"pace_requests: request {number} of {url}: {error}", file=sys.stderr)
            return 1
        if response.status != 200:
            print(f"pace_requests: request {number} of {url}: status {response.status}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
