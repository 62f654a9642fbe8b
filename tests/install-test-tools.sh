#!/bin/sh
# Installs Debian's prometheus (the server and promtool) for the monitoring tests when
# it is missing and this is root, as `make test` needs Java. The package's own service
# is kept from starting: the tests start their own server on a free loopback port.
# Never fails: without Prometheus those tests skip and say why.
set -u
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "prometheus not installed and not root (apt-get install prometheus): the Prometheus tests will skip"
    exit 0
fi
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
fi
if timeout 600 apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive timeout 600 \
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
    echo "installed $(prometheus --version 2>&1 | head -n 1)"
else
    echo "prometheus not installed: the Prometheus tests will skip"
fi
if [ -n "$made_policy" ]; then
    rm -f /usr/sbin/policy-rc.d
fi
exit 0
