#!/usr/bin/env bash
# Installs everything, then registers this machine as @server_master (local nginx + MariaDB) and verifies it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
AEGIR=.venv/bin/aegir
export AEGIR_ROOT="${AEGIR_ROOT:-/var/aegir}"

# 1. The system nginx includes Aegir's server conf (what Aegir's Debian package does at install time).
if [ ! -f /etc/nginx/conf.d/aegir.conf ]; then
  echo "include ${AEGIR_ROOT}/config/nginx*.conf;" > /etc/nginx/conf.d/aegir.conf
fi
if ! pgrep -x nginx >/dev/null; then
  echo "demo: starting nginx"
  /usr/sbin/nginx
fi

# 2. A MariaDB admin account for Aegir (as Aegir's docs recommend), password kept in a 0600 file.
PWFILE="$HOME/.aegir/db_admin_password"
if [ ! -s "$PWFILE" ]; then
  mkdir -p "$(dirname "$PWFILE")" && (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$PWFILE")
fi
mariadb <<SQL
CREATE USER IF NOT EXISTS 'aegir_root'@'127.0.0.1' IDENTIFIED BY '$(cat "$PWFILE")';
ALTER USER 'aegir_root'@'127.0.0.1' IDENTIFIED BY '$(cat "$PWFILE")';
GRANT ALL PRIVILEGES ON *.* TO 'aegir_root'@'127.0.0.1' WITH GRANT OPTION;
SQL

# 3. The local Prefect server that stores contexts and runs tasks (UI on http://127.0.0.1:4200).
$AEGIR server status >/dev/null 2>&1 || $AEGIR server start

# 4. Register and verify @server_master.
$AEGIR save @server_master --context_type=server --http_service_type=nginx --db_service_type=mysql \
  --db_host=127.0.0.1 --db_user=aegir_root --db_password-file="$PWFILE"
$AEGIR verify @server_master
$AEGIR show @server_master
.venv/bin/prefect block ls
