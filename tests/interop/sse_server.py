"""A small third-party SSE server (sse-starlette on uvicorn) for
`tailcast listen` tests.

Usage: sse_server.py [PORT]   (0 or none: a free port)

Binds 127.0.0.1 only, prints `listening PORT` once ready, and then one JSON
line per SSE request: {"path", "last_event_id"} so a test can check what
the client sent. sse-starlette ends lines with CRLF.

Routes:
  /numbers?count=N&retry=MS&interval=S
      events id=n data=n for n after Last-Event-ID (or from 1); the first
      frame is `retry: MS`; after N events of this connection the response
      ends (N=0: never)
  /mixed
      a fixed list of events with multi-line data, custom types, a
      comment, empty lines and non-ASCII text, then stays open
  /forbidden
      403 with a JSON error body
"""

import asyncio
import json
import socket
import sys

import uvicorn
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

MIXED = [
    ServerSentEvent(data="hello\nworld", event="greeting", id="m1"),
    ServerSentEvent(data="plain message", id="m2"),
    ServerSentEvent(comment="a comment, ignored"),
    ServerSentEvent(data=json.dumps({"temp": 21.5, "unit": "C"}), event="sensor", id="m3"),
    ServerSentEvent(data="first\n\nthird", event="gap"),
    ServerSentEvent(data="héllo wörld — 日本語 🎉", event="unicode", id="m4"),
]


def log_request(request):
    print(
        json.dumps(
            {
                "path": request.url.path,
                "last_event_id": request.headers.get("last-event-id"),
                "token": request.headers.get("x-token"),
            }
        ),
        flush=True,
    )


async def numbers(request):
    log_request(request)
    last = request.headers.get("last-event-id", "")
    start = int(last) + 1 if last.isdigit() else 1
    count = int(request.query_params.get("count", "0"))
    retry = int(request.query_params.get("retry", "100"))
    interval = float(request.query_params.get("interval", "0.01"))

    async def events():
        yield ServerSentEvent(retry=retry)
        n = start
        sent = 0
        while count == 0 or sent < count:
            yield ServerSentEvent(data=str(n), id=str(n))
            n += 1
            sent += 1
            await asyncio.sleep(interval)

    return EventSourceResponse(events())


async def mixed(request):
    log_request(request)

    async def events():
        for event in MIXED:
            yield event
        while True:
            await asyncio.sleep(3600)

    return EventSourceResponse(events())


async def forbidden(request):
    log_request(request)
    return JSONResponse({"error": "forbidden", "detail": "this stream needs a token"}, status_code=403)


app = Starlette(
    routes=[
        Route("/numbers", numbers),
        Route("/mixed", mixed),
        Route("/forbidden", forbidden),
    ]
)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    print(f"listening {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
