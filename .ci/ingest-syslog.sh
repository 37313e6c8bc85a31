#!/usr/bin/env bash
# Installs the real syslog clients that tests/ingest_syslog.rs drives:
#   - logger (util-linux / Debian bsdutils): RFC 3164 and 5424 over TCP
#     (LF and octet-counted framing) and UDP
#   - rsyslogd (Debian rsyslog): run by the tests as an unprivileged
#     foreground process with their own configuration (imfile -> omfwd);
#     the system service is never started.
#   - redis-server (Debian redis-server, also installed by .ci/run for the
#     Redis tests): the back-pressure test stops and restarts its own.
# Idempotent: a second run with everything in place only checks it.
set -euo pipefail

need=()
command -v logger >/dev/null 2>&1 || need+=(bsdutils)
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)

if [ "${#need[@]}" -gt 0 ]; then
    echo "ingest-syslog: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d 101: the package's service must not be started here.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
fi

rsyslogd=$(command -v rsyslogd || echo /usr/sbin/rsyslogd)
logger --version | head -n 1
"$rsyslogd" -v | head -n 1
redis-server --version
echo "ingest-syslog: ready (logger $(command -v logger), rsyslogd $rsyslogd)"
