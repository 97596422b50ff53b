#!/usr/bin/env bash
# Installs what Aegir Flows needs on Debian/Ubuntu (run as root or with sudo available):
# Debian packages (web servers, php-fpm, ssh, MariaDB client/server, PostgreSQL), a running MariaDB, and the venv
# in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# postgresql: its binaries (initdb, pg_ctl) for the test of the multi-host setup, which runs its own cluster
PACKAGES=(nginx-light apache2 php-fpm php-mysql php-cli openssh-server openssh-client mariadb-client
          git zstd ca-certificates python3-venv postgresql)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v mariadbd >/dev/null 2>&1 && ! [ -x /usr/sbin/mariadbd ]; then
  missing+=(mariadb-server)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  # wait for another apt (unattended-upgrades, a second shell) instead of failing on its lock
  APT=(apt-get -o DPkg::Lock::Timeout=600)
  $SUDO "${APT[@]}" update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO "${APT[@]}" install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# MariaDB must answer on 127.0.0.1:3306
if ! mariadb-admin ping -h 127.0.0.1 --silent >/dev/null 2>&1; then
  echo "setup: starting MariaDB"
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
  $SUDO start-stop-daemon --start --oknodo --background --chuid mysql --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do
    mariadb-admin ping -h 127.0.0.1 --silent >/dev/null 2>&1 && break
    sleep 0.5
  done
  mariadb-admin ping -h 127.0.0.1 --silent >/dev/null 2>&1 || { echo "setup: MariaDB did not start" >&2; exit 1; }
fi

# Python >= 3.11 and the project in .venv
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 needed" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import aegir.cli, prefect, paramiko, pymysql" || { echo "setup: the venv is incomplete" >&2; exit 1; }
echo "setup: ready (.venv/bin/aegir)"
