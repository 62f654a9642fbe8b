#!/bin/sh
# Installs the Debian packages some tests drive, when missing and this is root, as
# `make test` needs Java: prometheus (the server and promtool) for the monitoring tests,
# wrk for the load-benchmark test, chromium for the dashboard's browser tests,
# postgresql for the audit trail and back-test jobs on PostgreSQL (tests/postgres.py).
# The packages' own services are kept from starting: the tests start their own servers
# on free loopback ports.
# Never fails: without a tool the tests that need it skip and say why.
set -u
missing=
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing="prometheus"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
# Debian puts only the client wrappers on the PATH; the server's binaries stay here.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
    || missing="$missing postgresql"
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "not installed and not root (apt-get install$missing ):$missing tests will skip"
    exit 0
fi
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
fi
# shellcheck disable=SC2086  # $missing is a list of package names
if timeout 600 apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive timeout 600 \
        apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
    echo "installed:$missing"
else
    echo "not installed:$missing; the tests that need them will skip"
fi
if [ -n "$made_policy" ]; then
    rm -f /usr/sbin/policy-rc.d
fi
exit 0
