#!/usr/bin/env bash
# A private MariaDB for the second test shard: `scripts/test-mariadb.sh start|stop PORT`.
# Data in /tmp/aegir-test-mariadb-PORT; root@127.0.0.1 with an empty password, like the machine's server.
set -euo pipefail
action="$1" port="$2"
dir="/tmp/aegir-test-mariadb-$port"
case "$action" in
  start)
    "$0" stop "$port" 2>/dev/null || true
    rm -rf "$dir" && mkdir -p "$dir" && chown mysql:mysql "$dir"
    mariadb-install-db --no-defaults --user=mysql --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install.log" 2>&1
    start-stop-daemon --start --background --chuid mysql --pidfile "$dir/mysqld.pid" --exec /usr/sbin/mariadbd -- \
      --no-defaults \
      --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 --socket="$dir/mysqld.sock" \
      --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" --skip-log-bin --innodb-buffer-pool-size=256M
    for _ in $(seq 1 120); do
      mariadb-admin --no-defaults --socket="$dir/mysqld.sock" -uroot ping --silent >/dev/null 2>&1 && break
      sleep 0.25
    done
    mariadb --no-defaults --socket="$dir/mysqld.sock" -uroot -e \
      "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    mariadb-admin --no-defaults -h 127.0.0.1 -P "$port" -uroot ping --silent
    ;;
  stop)
    if [ -f "$dir/mysqld.pid" ]; then
      kill "$(cat "$dir/mysqld.pid")" 2>/dev/null || true
      for _ in $(seq 1 60); do [ -f "$dir/mysqld.pid" ] || break; sleep 0.25; done
    fi
    rm -rf "$dir"
    ;;
esac
