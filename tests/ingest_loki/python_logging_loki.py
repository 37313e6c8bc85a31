"""Drives `python-logging-loki` (JSON push, Basic auth) against a tailcast
on loopback: python python_logging_loki.py URL TOKEN

Sends three lines with the version 1 emitter (`streams`/`values`) and one
with the version 0 emitter (`labels` string, `entries` with RFC 3339
times). A refused push raises (the handler's default only prints), so
the script exits non-zero on any failure."""

import logging
import sys

import logging_loki


class Strict(logging_loki.LokiHandler):
    def handleError(self, record):  # noqa: N802
        raise


def main() -> None:
    url, token = sys.argv[1], sys.argv[2]
    push = url + "/loki/api/v1/push"
    v1 = Strict(url=push, tags={"app": "py-demo"}, auth=("loki", token), version="1")
    v0 = Strict(url=push, tags={"app": "py-demo"}, auth=("loki", token), version="0")
    log = logging.getLogger("py-demo")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(v1)
    log.info("python line 0")
    log.warning("python line 1", extra={"tags": {"request_id": "r-1"}})
    log.error("python line 2 ünïcode")
    log.removeHandler(v1)
    log.addHandler(v0)
    log.info("python legacy line")
    print("sent 4", flush=True)


if __name__ == "__main__":
    main()
