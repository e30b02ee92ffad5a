#!/usr/bin/env bash
# Installs what the test suite needs and writes target/tools.env naming it.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target

apt_packages=()
command -v promtool >/dev/null || apt_packages+=(prometheus)
command -v prometheus-alertmanager >/dev/null || apt_packages+=(prometheus-alertmanager)
command -v chromium >/dev/null || apt_packages+=(chromium)
command -v chromedriver >/dev/null || apt_packages+=(chromium-driver)
command -v prosody >/dev/null || apt_packages+=(prosody)
# PostgreSQL for the reports store's tests: the server binaries, not a cluster.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_packages+=(postgresql)
command -v openssl >/dev/null || apt_packages+=(openssl)
# A real SMTP server writing a Maildir, for the notification tests.
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || apt_packages+=(python3-aiosmtpd)
if ((${#apt_packages[@]})); then
    echo "setup: installing Debian packages: ${apt_packages[*]}" >&2
    sudo_cmd=()
    [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
    # The packages may start their services on install; the tests start their own.
    for service in prometheus prometheus-alertmanager prometheus-node-exporter prosody postgresql; do
        "${sudo_cmd[@]}" service "$service" stop >/dev/null 2>&1 || true
    done
fi

synapse=$(bash tests/synapse/install.sh)
postgres_bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")

cat > target/tools.env <<ENV
export CHATPROBE_PROMTOOL=$(command -v promtool)
export CHATPROBE_PROMETHEUS=$(command -v prometheus)
export CHATPROBE_ALERTMANAGER=$(command -v prometheus-alertmanager)
export CHATPROBE_AMTOOL=$(command -v amtool)
export CHATPROBE_CHROMIUM=$(command -v chromium)
export CHATPROBE_CHROMEDRIVER=$(command -v chromedriver)
export CHATPROBE_SYNAPSE=$synapse
export CHATPROBE_PROSODY=$(command -v prosody)
export CHATPROBE_POSTGRES_BIN=$postgres_bin
export CHATPROBE_OPENSSL=$(command -v openssl)
export CHATPROBE_AIOSMTPD_PYTHON=/usr/bin/python3
ENV
echo "setup: tools ready (target/tools.env)" >&2
