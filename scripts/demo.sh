#!/usr/bin/env bash
# The README demo, from a fresh machine: installs everything, registers this machine as @server_master
# (nginx + php-fpm + MariaDB) and @server_apache (apache on port 8080), verifies them, then registers two
# sample platforms (Drupal 7 and Drupal 10 shaped, from tests/fixtures — see below), installs one site on
# each behind nginx and one behind apache, and prints their URLs and one-time login links.
#
# The sample platforms and their drush are TEST STAND-INS (tests/fixtures/drupal): small Drupal-shaped
# codebases and a drush look-alike that keep real Drupal tables in MariaDB. With a real Drupal codebase
# you only change --root (and --drush for a Drupal 7 platform: the path of drush 8).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
AEGIR=.venv/bin/aegir
export AEGIR_ROOT="${AEGIR_ROOT:-/var/aegir}"
STANDIN_DRUSH="$PWD/tests/fixtures/drupal/drush"

# 1. The system nginx includes Aegir's server conf (what Aegir's Debian package does at install time);
#    php-fpm runs the sites' PHP.
if [ ! -f /etc/nginx/conf.d/aegir.conf ]; then
  echo "include ${AEGIR_ROOT}/config/nginx*.conf;" > /etc/nginx/conf.d/aegir.conf
fi
# Debian's default site claims the default server of port 80 and would answer 200 for every name no site has
# (a deleted or renamed site's old name too): Aegir's catch-all (404) is the default instead.
rm -f /etc/nginx/sites-enabled/default
# (the system instances, by their pid files: other nginx/php-fpm processes, e.g. a test run's, do not count)
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
alive /run/nginx.pid || { echo "demo: starting nginx"; /usr/sbin/nginx; }
FPM=$(ls /usr/sbin/php-fpm* | sort | tail -1)
mkdir -p /run/php
alive "/run/php/php${FPM#/usr/sbin/php-fpm}-fpm.pid" || { echo "demo: starting $FPM"; "$FPM"; }

# 2. The system apache on port 8080 (nginx has 80), including Aegir's apache conf.
if ! grep -q "Aegir demo" /etc/apache2/ports.conf; then
  sed -i 's/^Listen 80$/# Listen 80  (Aegir demo: nginx serves port 80)\nListen 8080/' /etc/apache2/ports.conf
fi
echo "IncludeOptional ${AEGIR_ROOT}/config/apache*.conf" > /etc/apache2/conf-available/aegir.conf
a2enconf -q aegir >/dev/null
a2enmod -q rewrite env proxy proxy_fcgi >/dev/null
a2dissite -q 000-default >/dev/null 2>&1 || true
pgrep -x apache2 >/dev/null || { echo "demo: starting apache2"; apache2ctl start; }

# 3. A MariaDB admin account for Aegir (as Aegir's docs recommend), password kept in a 0600 file.
PWFILE="$HOME/.aegir/db_admin_password"
if [ ! -s "$PWFILE" ]; then
  mkdir -p "$(dirname "$PWFILE")" && (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$PWFILE")
fi
mariadb <<SQL
CREATE USER IF NOT EXISTS 'aegir_root'@'127.0.0.1' IDENTIFIED BY '$(cat "$PWFILE")';
ALTER USER 'aegir_root'@'127.0.0.1' IDENTIFIED BY '$(cat "$PWFILE")';
GRANT ALL PRIVILEGES ON *.* TO 'aegir_root'@'127.0.0.1' WITH GRANT OPTION;
SQL

# 4. The local Prefect server that stores contexts and runs tasks (UI on http://127.0.0.1:4200; it says where
#    the login is, also when it is already running) with every deployment served from a background
#    `aegir serve` (the schedules: nightly backup-all and purge-backups), and a mail sink for the welcome e-mails (messages land in
#    $AEGIR_ROOT/demo-mail/new/).
$AEGIR server start
if ! pgrep -f "aiosmtpd.*127.0.0.1:8025" >/dev/null; then
  mkdir -p "$AEGIR_ROOT"/demo-mail/{tmp,new,cur}
  nohup .venv/bin/python -m aiosmtpd -n -l 127.0.0.1:8025 -c aiosmtpd.handlers.Mailbox "$AEGIR_ROOT/demo-mail" \
    >/dev/null 2>&1 &
fi
$AEGIR mail-server --host=127.0.0.1 --port=8025 --from=aegir@localhost

# 5. Servers.
$AEGIR save @server_master --context_type=server --http_service_type=nginx --db_service_type=mysql \
  --db_host=127.0.0.1 --db_user=aegir_root --db_password-file="$PWFILE"
$AEGIR verify @server_master
$AEGIR save @server_apache --context_type=server --http_service_type=apache --http_port=8080
$AEGIR verify @server_apache

# 6. Platforms (sample codebases; a real one is just --root=/path/to/drupal).
for kind in d7 d10; do
  [ -d "$AEGIR_ROOT/platforms/sample-$kind" ] || \
    .venv/bin/python -m tests.fixtures.drupal.make_platforms "$kind" "$AEGIR_ROOT/platforms/sample-$kind" >/dev/null
done
[ -d "$AEGIR_ROOT/platforms/sample-d7-apache" ] || \
  .venv/bin/python -m tests.fixtures.drupal.make_platforms d7 "$AEGIR_ROOT/platforms/sample-d7-apache" >/dev/null
$AEGIR save @platform_sample_d7 --context_type=platform --root="$AEGIR_ROOT/platforms/sample-d7" \
  --drush="$STANDIN_DRUSH"
$AEGIR save @platform_sample_d10 --context_type=platform --root="$AEGIR_ROOT/platforms/sample-d10"
$AEGIR save @platform_sample_d7_apache --context_type=platform --root="$AEGIR_ROOT/platforms/sample-d7-apache" \
  --web_server=@server_apache --drush="$STANDIN_DRUSH"
for p in @platform_sample_d7 @platform_sample_d10 @platform_sample_d7_apache; do $AEGIR verify "$p"; done

# 7. Sites: save, install (or verify when already installed), show what answers.
field() {  # context field: one top-level field of `aegir show --json` (not the same key inside its backups)
  $AEGIR show "$1" --json | .venv/bin/python -c "import json, sys; print(json.load(sys.stdin).get('$2') or '')"
}
install_site() {  # uri platform port
  # a site that exists keeps its record: an installed one moves only with a task (it may have been migrated)
  $AEGIR show "@$1" >/dev/null 2>&1 || \
    $AEGIR save "@$1" --context_type=site --platform="$2" --client_email="owner@$1"
  if [ "$(field "@$1" status)" = installed ]; then
    $AEGIR verify "@$1"
    $AEGIR login-reset "@$1"
  else
    $AEGIR install "@$1"
  fi
  echo "demo: curl -H 'Host: $1' http://127.0.0.1:$3/ ->" \
    "$(curl -s -H "Host: $1" "http://127.0.0.1:$3/" | grep -o '<title>[^<]*</title>')"
}
install_site d7.demo.test @platform_sample_d7 80
install_site d10.demo.test @platform_sample_d10 80
install_site apache.demo.test @platform_sample_d7_apache 8080
echo "demo: welcome e-mails: $(ls "$AEGIR_ROOT/demo-mail/new" 2>/dev/null | wc -l) in $AEGIR_ROOT/demo-mail/new/"

# 8. Backup and restore: a backup, the list, a restore from it (a pinned safety backup is taken first).
$AEGIR backup @d7.demo.test --description="demo backup"
$AEGIR backups @d7.demo.test
$AEGIR restore @d7.demo.test latest
echo "demo: after the restore, curl -H 'Host: d7.demo.test' http://127.0.0.1/ ->" \
  "$(curl -s -H 'Host: d7.demo.test' http://127.0.0.1/ | grep -o '<title>[^<]*</title>')"

# 9. Upgrade, clone, rename: a newer platform, the pre-flight, the migrate (updates run, the old copy goes
#    only after the new one answers); a clone of the upgraded site, renamed.
[ -d "$AEGIR_ROOT/platforms/sample-d7-newer" ] || \
  .venv/bin/python -m tests.fixtures.drupal.make_platforms d7-newer "$AEGIR_ROOT/platforms/sample-d7-newer" >/dev/null
$AEGIR save @platform_sample_d7_newer --context_type=platform --root="$AEGIR_ROOT/platforms/sample-d7-newer" \
  --drush="$STANDIN_DRUSH"
$AEGIR verify @platform_sample_d7_newer
if [ "$(field @d7.demo.test platform)" = @platform_sample_d7 ]; then
  $AEGIR compare @d7.demo.test @platform_sample_d7_newer --changed
  $AEGIR migrate @d7.demo.test @platform_sample_d7_newer
fi
if ! $AEGIR show @preview.d7.demo.test >/dev/null 2>&1; then
  $AEGIR show @staging.d7.demo.test >/dev/null 2>&1 || $AEGIR clone @d7.demo.test staging.d7.demo.test
  $AEGIR rename @staging.d7.demo.test preview.d7.demo.test
fi
for host in d7.demo.test preview.d7.demo.test staging.d7.demo.test; do  # staging: no site any more
  echo "demo: curl -H 'Host: $host' http://127.0.0.1/ ->" \
    "$(curl -s -H "Host: $host" http://127.0.0.1/ | grep -o '<title>[^<]*</title>')"
done

# 10. Names no site has (the renamed-away staging name, a typo) get Aegir's 404 on both web servers, never an
#     OS default page; the hosting system keeps running: the API, and the deployments with their schedules.
for check in no-such-site.demo.test:80 no-such-site.demo.test:8080 staging.d7.demo.test:80; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: ${check%:*}" "http://127.0.0.1:${check#*:}/")
  [ "$code" = 404 ] || { echo "demo: port ${check#*:} answers ${check%:*} with HTTP $code, not 404" >&2; exit 1; }
done
$AEGIR server status
echo "demo: running: the Prefect API and UI (http://127.0.0.1:4200) and \`aegir serve\` with the schedules;" \
  "\`aegir server stop\` stops both, \`aegir server start\` (or this script) starts them again"
