#!/usr/bin/env bash
# Installs Synapse (PyPI `matrix-synapse`) into a virtualenv under
# target/synapse-venv for the Matrix tests. Safe to run again: skips when the
# venv already imports synapse. Prints the path of its `synapse_homeserver`
# on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/synapse-venv
python=$venv/bin/python
if [[ -x $python ]] && "$python" -c 'import synapse.app.homeserver' 2>/dev/null; then
    echo "$PWD/$venv/bin/synapse_homeserver"
    exit 0
fi

echo "setup: installing Synapse (matrix-synapse from PyPI) into $venv" >&2
system_python=$(command -v python3) || { echo "setup: python3 (3.10 or newer) is needed for Synapse" >&2; exit 1; }
"$system_python" -c 'import venv, ensurepip' 2>/dev/null ||
    { echo "setup: python3 lacks venv/ensurepip (Debian: apt-get install python3-venv)" >&2; exit 1; }
"$system_python" -m venv "$venv"
"$python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$python" -m pip install --quiet --disable-pip-version-check matrix-synapse >&2
"$python" -c 'import synapse.app.homeserver' >&2
echo "$PWD/$venv/bin/synapse_homeserver"
