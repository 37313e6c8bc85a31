"""Consumes an SSE stream with httpx + httpx-sse. httpx-sse parses but does
not reconnect, so this loop does what its documentation suggests: on a drop,
wait the server's `retry:` time and reconnect with Last-Event-ID.

Prints one JSON line per event: {"id","type","data"}, plus {"open": true} on
each connection and {"error": ...} on drops.
Usage: httpx_sse_client.py URL
"""

import json
import sys
import time

import httpx
from httpx_sse import connect_sse


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    url = sys.argv[1]
    last_id = None
    retry = 1.0
    with httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client:
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with connect_sse(client, "GET", url, headers=headers) as source:
                    source.response.raise_for_status()
                    emit({"open": True})
                    for sse in source.iter_sse():
                        if sse.retry is not None:
                            retry = sse.retry / 1000
                        if sse.id:
                            last_id = sse.id
                        if sse.retry is not None and sse.data == "":
                            continue  # a `retry:`-only block, not an event
                        emit({"id": sse.id, "type": sse.event, "data": sse.data})
                    emit({"error": "stream ended"})
            except httpx.HTTPStatusError as e:
                emit({"error": str(e)})
                sys.exit(1)
            except httpx.HTTPError as e:
                emit({"error": repr(e)})
            time.sleep(retry)


if __name__ == "__main__":
    main()
