#!/usr/bin/env python3
"""Checks deploy/compose*.yaml: they parse as YAML, and their Traefik setup,
mounts and tailcast commands are what docs/deploy.md promises. Called by
.ci/deploy-check.sh; needs PyYAML. Exits 1 with one line per problem."""

import argparse
import re
import sys

import yaml

# Flags the contract names but this build does not have yet: allowed in the
# compose files (which then do not start, as the README says), reported.
# (The Redis backend's --redis and --node have shipped.)
PENDING_FLAGS = {}

TRAEFIK_COMMAND = [
    "--providers.docker=true",
    "--providers.docker.exposedbydefault=false",
    "--entrypoints.web.address=:80",
    "--entrypoints.web.transport.respondingtimeouts.readtimeout=0s",
]

LABEL_KEY = re.compile(
    r"^traefik\.(enable|http\.(routers|services|middlewares)\.[A-Za-z0-9_-]+\.[a-z.]+)$")


def labels_of(service):
    raw = service.get("labels", [])
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    out = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"label {item!r} is not key=value")
        out[key] = value
    return out


def check_file(path, serve_flags, port, problems, notes):
    def problem(text):
        problems.append(f"{path}: {text}")

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    services = doc.get("services") or {}
    traefik = services.get("traefik")
    if traefik is None:
        problem("no traefik service")
        return
    if not str(traefik.get("image", "")).split(":")[-1].startswith("v3"):
        problem("traefik image is not a v3 tag")
    for arg in TRAEFIK_COMMAND:
        if arg not in traefik.get("command", []):
            problem(f"traefik command lacks {arg}")
    if "/var/run/docker.sock:/var/run/docker.sock:ro" not in traefik.get("volumes", []):
        problem("traefik does not mount the Docker socket read-only")

    nodes = {name: s for name, s in services.items()
             if str(s.get("image", "")).startswith("tailcast:")}
    if not nodes:
        problem("no tailcast service")
        return
    label_sets = []
    stream_names = []
    for name, node in nodes.items():
        where = f"service {name}"
        try:
            labels = labels_of(node)
        except ValueError as e:
            problem(f"{where}: {e}")
            continue
        label_sets.append(labels)
        for key in labels:
            if not LABEL_KEY.match(key):
                problem(f"{where}: label {key!r} is not a Traefik label")
            if ".middlewares." in key and key.endswith(".compress"):
                problem(f"{where}: a compress middleware would hold SSE bytes back")
        expected = {
            "traefik.enable": "true",
            "traefik.http.routers.tailcast.entrypoints": "web",
            "traefik.http.services.tailcast.loadbalancer.server.port": str(port),
            "traefik.http.services.tailcast.loadbalancer.responseforwarding.flushinterval": "-1",
        }
        for key, value in expected.items():
            if labels.get(key) != value:
                problem(f"{where}: label {key} is {labels.get(key)!r}, expected {value!r}")
        rule = labels.get("traefik.http.routers.tailcast.rule", "")
        if not re.fullmatch(r"Host\(`[a-z0-9.-]+`\)", rule):
            problem(f"{where}: router rule {rule!r} is not Host(`name`)")

        # ${VAR:-default} holds a colon of its own: keep only its default.
        mounts = [re.sub(r"\$\{[A-Za-z_]+:-([^}]*)\}", r"\1", v)
                  for v in node.get("volumes", []) if isinstance(v, str)]
        logs = [m for m in mounts if m.split(":")[1:2] == ["/logs"]]
        if len(logs) != 1 or not logs[0].endswith(":ro"):
            problem(f"{where}: the host logs are not mounted read-only at /logs")
        elif logs[0].split(":")[0].endswith(".log"):
            problem(f"{where}: mount the log's directory, not the file (rotation)")

        command = node.get("command", [])
        if not command or command[0] != "serve":
            problem(f"{where}: command does not start with serve")
            continue
        env = node.get("environment", {})
        if isinstance(env, list):
            env = dict(e.partition("=")[::2] for e in env)
        clustered = "TAILCAST_REDIS" in env or any(a.split("=")[0] == "--redis" for a in command)
        if clustered and "TAILCAST_DATA_DIR" in env:
            problem(f"{where}: --redis with TAILCAST_DATA_DIR is refused at start")
        args = iter(command[1:])
        for arg in args:
            if arg.startswith("--"):
                flag = arg.split("=")[0]
                if flag in serve_flags:
                    if flag in PENDING_FLAGS:
                        notes.append(f"{path}: {flag} is now in the binary: "
                                     "update PENDING_FLAGS and the README")
                elif flag in PENDING_FLAGS:
                    notes.append(f"{path}: {where} uses {flag}, not in this build "
                                 f"({PENDING_FLAGS[flag]})")
                else:
                    problem(f"{where}: unknown serve option {flag}")
                if "=" not in arg:
                    next(args, None)
            else:
                stream, sep, file = arg.partition("=")
                if not sep or not file.startswith("/logs/"):
                    problem(f"{where}: {arg!r} is not NAME=/logs/FILE")
                stream_names.append(stream)
        if env.get("TAILCAST_LOG_FORMAT") not in (None, "json", "text"):
            problem(f"{where}: TAILCAST_LOG_FORMAT must be json or text")

    if len(stream_names) != len(set(stream_names)):
        problem(f"two nodes follow the same stream name: {stream_names}")
    if len(nodes) > 1:
        if any(labels != label_sets[0] for labels in label_sets):
            problem("the tailcast nodes' labels differ: Traefik would not merge them into one service")
        redis = services.get("redis")
        if redis is None or "healthcheck" not in redis:
            problem("a cluster needs a redis service with a healthcheck")
        for name, node in nodes.items():
            dep = (node.get("depends_on") or {}).get("redis", {})
            if dep.get("condition") != "service_healthy":
                problem(f"service {name} does not wait for a healthy redis")
    if not any(p.startswith(f"{path}: ") for p in problems):
        notes.append(f"{path}: ok ({len(nodes)} tailcast node(s), streams {stream_names}, "
                     f"Traefik labels checked)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-help", required=True, help="output of `tailcast serve --help`")
    parser.add_argument("--dockerfile", required=True)
    parser.add_argument("files", nargs="+")
    opts = parser.parse_args()
    with open(opts.serve_help, encoding="utf-8") as f:
        serve_flags = set(re.findall(r"(--[a-z][a-z0-9-]*)", f.read()))
    with open(opts.dockerfile, encoding="utf-8") as f:
        found = re.search(r"TAILCAST_ADDR=0\.0\.0\.0:(\d+)", f.read())
    if not found:
        print(f"{opts.dockerfile}: no TAILCAST_ADDR=0.0.0.0:PORT", file=sys.stderr)
        return 1
    problems, notes = [], []
    for path in opts.files:
        try:
            check_file(path, serve_flags, int(found.group(1)), problems, notes)
        except (OSError, yaml.YAMLError) as e:
            problems.append(f"{path}: {e}")
    for note in notes:
        print(f"check_compose: {note}")
    for p in problems:
        print(f"check_compose: error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
