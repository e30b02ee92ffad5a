#!/usr/bin/env bash
# Writes a Synapse config for probing into DIR, listening on 127.0.0.1:PORT:
# sqlite, no federation, no TLS, presence/stats/metrics off, open registration
# without verification, rate limits raised, sync response cache off, cheap
# password hashing.
# Usage: configure.sh DIR PORT [SYNAPSE_HOMESERVER]
# (SYNAPSE_HOMESERVER defaults to the one tests/synapse/install.sh installs.)
set -euo pipefail
usage="usage: configure.sh DIR PORT [SYNAPSE_HOMESERVER]"
dir=${1:?$usage}
port=${2:?$usage}
synapse=${3:-$(cd "$(dirname "$0")/../.." && pwd)/target/synapse-venv/bin/synapse_homeserver}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

cat > "$dir/log.yaml" <<LOG
version: 1
formatters:
  precise:
    format: '%(asctime)s %(levelname)s %(name)s %(message)s'
handlers:
  file:
    class: logging.FileHandler
    filename: $dir/homeserver.log
    formatter: precise
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
LOG

# A very high rate limit, used for every rc_* setting below.
unlimited='{per_second: 100000, burst_count: 100000}'

cat > "$dir/homeserver.yaml" <<CONFIG
server_name: localhost
pid_file: $dir/homeserver.pid
signing_key_path: $dir/signing.key
log_config: $dir/log.yaml
media_store_path: $dir/media
report_stats: false
# Cheap password hashing: probe accounts log in often (not for real users).
bcrypt_rounds: 4
macaroon_secret_key: $(secret)
form_secret: $(secret)
listeners:
  - port: $port
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: $dir/homeserver.db
federation_domain_whitelist: []
trusted_key_servers: []
suppress_key_server_warning: true
presence:
  enabled: false
stats:
  enabled: false
enable_metrics: false
url_preview_enabled: false
enable_registration: true
enable_registration_without_verification: true
caches:
  sync_response_cache_duration: 0
rc_message: $unlimited
rc_registration: $unlimited
rc_registration_token_validity: $unlimited
rc_login:
  address: $unlimited
  account: $unlimited
  failed_attempts: $unlimited
rc_admin_redaction: $unlimited
rc_joins:
  local: $unlimited
  remote: $unlimited
rc_joins_per_room: $unlimited
rc_key_requests: $unlimited
rc_3pid_validation: $unlimited
rc_invites:
  per_room: $unlimited
  per_user: $unlimited
  per_issuer: $unlimited
rc_third_party_invite: $unlimited
rc_media_create: $unlimited
rc_presence:
  per_user: $unlimited
rc_delayed_event_mgmt: $unlimited
rc_room_creation: $unlimited
rc_reports: $unlimited
rc_user_directory: $unlimited
rc_profile: $unlimited
CONFIG

"$synapse" --config-path "$dir/homeserver.yaml" --generate-keys >/dev/null
echo "$dir/homeserver.yaml"
