"""The tutorial stack as a peer for tailcast's benchmark.

FastAPI + sse-starlette + uvicorn, written the way the "realtime streaming
with FastAPI and SSE" tutorials do it: one asyncio.Queue per subscriber and
a publish handler that puts each event on every queue. Same paths as
tailcast: POST /channels/NAME publishes the body, GET /realtime/NAME
subscribes. Run by bench/compare.sh:
    uvicorn app:app --host 127.0.0.1 --port PORT --no-access-log
"""

import asyncio

from fastapi import FastAPI, Request
from sse_starlette.sse import EventSourceResponse

app = FastAPI()
channels: dict[str, set[asyncio.Queue]] = {}
last_id = 0


@app.post("/channels/{channel}")
async def publish(channel: str, request: Request):
    global last_id
    data = (await request.body()).decode("utf-8", "replace")
    last_id += 1
    subscribers = channels.get(channel, set())
    for queue in subscribers:
        queue.put_nowait({"id": str(last_id), "data": data})
    return {"id": str(last_id), "channel": channel, "subscribers": len(subscribers)}


@app.get("/realtime/{channel}")
async def realtime(channel: str, request: Request):
    # Registered before the response starts, so nothing published after
    # the client has the headers is missed.
    queue: asyncio.Queue = asyncio.Queue()
    channels.setdefault(channel, set()).add(queue)

    async def events():
        try:
            while True:
                yield await queue.get()
        finally:
            channels[channel].discard(queue)

    return EventSourceResponse(events())
