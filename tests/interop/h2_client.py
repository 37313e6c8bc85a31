"""A raw HTTP/2 client on the `h2` library, for tests/tls.rs.

Opens every PATH as a GET stream on ONE connection (TLS with ALPN `h2`, or
h2c with prior knowledge) and reports what happens, one JSON object per
line on stdout, until the server closes the connection:

  {"event": "connected", "alpn": "h2" | null, "streams": N}
  {"event": "response", "path": P, "status": S, "headers": {...}}
  {"event": "data", "path": P, "text": "..."}
  {"event": "reset", "path": P, "code": C}
  {"event": "ended", "path": P}
  {"event": "goaway", "code": C}
  {"event": "closed"}

--window sets the streams' initial flow-control window. Data received on
a --stall PATH is never acknowledged, so once that stream's window is used
up it stays closed: the stream "stops reading" while the others go on (the
connection's own window is made large enough that it never stalls them).

Usage: h2_client.py HOST PORT [--tls CA_FILE] [--server-name NAME]
                    [--window N] [--stall PATH]... PATH...
"""

import argparse
import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--tls", metavar="CA_FILE")
    parser.add_argument("--server-name", default="localhost")
    parser.add_argument("--window", type=int, default=65535)
    parser.add_argument("--stall", action="append", default=[])
    parser.add_argument("paths", nargs="*")
    args = parser.parse_intermixed_args()

    sock = socket.create_connection((args.host, args.port))
    alpn = None
    if args.tls:
        context = ssl.create_default_context(cafile=args.tls)
        context.set_alpn_protocols(["h2"])
        sock = context.wrap_socket(sock, server_hostname=args.server_name)
        alpn = sock.selected_alpn_protocol()

    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: args.window})
    conn.increment_flow_control_window(2**30)

    paths = {}
    stalled = set()
    for path in args.paths + args.stall:
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(
            stream_id,
            [
                (":method", "GET"),
                (":path", path),
                (":scheme", "https" if args.tls else "http"),
                (":authority", f"{args.server_name}:{args.port}"),
                ("accept", "text/event-stream"),
            ],
            end_stream=True,
        )
        paths[stream_id] = path
        if path in args.stall:
            stalled.add(stream_id)
    sock.sendall(conn.data_to_send())
    emit("connected", alpn=alpn, streams=len(paths))

    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionError, ssl.SSLError):
            data = b""
        if not data:
            emit("closed")
            return
        for event in conn.receive_data(data):
            path = paths.get(getattr(event, "stream_id", None))
            if isinstance(event, h2.events.ResponseReceived):
                emit("response", path=path, status=int(dict(event.headers)[":status"]),
                     headers={k: v for k, v in event.headers if not k.startswith(":")})
            elif isinstance(event, h2.events.DataReceived):
                emit("data", path=path, text=event.data.decode("utf-8", "replace"))
                if event.stream_id not in stalled:
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                emit("reset", path=path, code=int(event.error_code))
            elif isinstance(event, h2.events.StreamEnded):
                emit("ended", path=path)
            elif isinstance(event, h2.events.ConnectionTerminated):
                emit("goaway", code=int(event.error_code))
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
