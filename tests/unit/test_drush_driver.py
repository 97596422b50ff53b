"""The drush command lines per Drupal major (exactly what real drush accepts) and output handling."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from aegir.drupal.drush import Drush, DrushError, commands_for, redact_output, site_url
from aegir.errors import AegirError
from aegir.transport import CommandResult


@dataclass
class RecordingTransport:
    """Answers every command with a canned result and remembers the argv."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    host: str = "localhost"
    calls: list[list[str]] = field(default_factory=list)

    def run(self, argv, **kwargs) -> CommandResult:
        self.calls.append(list(argv))
        return CommandResult(list(argv), self.exit_code, self.stdout, self.stderr)


def drush(major: int, **answer) -> tuple[Drush, RecordingTransport]:
    t = RecordingTransport(**answer)
    return Drush(t, "/usr/local/bin/drush", "/var/aegir/platforms/d", "http://example.com", major), t


def test_drupal7_site_install_is_the_drush8_command_line_of_the_transcript():
    d, t = drush(7)
    d.site_install(
        "standard",
        sites_subdir="example.com",
        site_name="example.com",
        site_mail="a@b.c",
        account_mail="a@b.c",
        locale="de",
    )
    assert t.calls == [
        [
            "/usr/local/bin/drush", "--nocolor", "-r", "/var/aegir/platforms/d", "-l", "http://example.com",
            "site-install", "standard", "--account-mail=a@b.c", "--site-mail=a@b.c", "--site-name=example.com",
            "--sites-subdir=example.com", "--locale=de", "-y",
        ]
    ]  # fmt: skip


def test_drupal10_uses_drush12_names():
    d, t = drush(10, stdout=b"http://example.com/user/reset/1/1700000000/abc-_DEF/login\n")
    d.site_install("minimal", sites_subdir="x", site_name="x", site_mail="a@b.c", account_mail="a@b.c", locale="en")
    assert t.calls[0][:6] == ["/usr/local/bin/drush", "-r", "/var/aegir/platforms/d", "-l", "http://example.com",
                              "site:install"]  # fmt: skip
    assert not any(a.startswith("--locale") for a in t.calls[0])
    assert d.user_login() == "http://example.com/user/reset/1/1700000000/abc-_DEF/login"
    assert t.calls[-1][-2:] == ["user:login", "--no-browser"]
    d.maintenance(True)
    assert t.calls[-1][-4:] == ["state:set", "system.maintenance_mode", "1", "--input-format=integer"]
    d.cache_clear()
    assert t.calls[-1][-1] == "cache:rebuild"


def test_drupal7_maintenance_cache_uli_pm_list():
    d, t = drush(7, stdout=b'{"system": {"version": "7.80"}}')
    d.maintenance(False)
    assert t.calls[-1][-3:] == ["vset", "maintenance_mode", "0"]
    d.cache_clear()
    assert t.calls[-1][-2:] == ["cc", "all"]
    assert d.enabled_modules() == {"system": {"version": "7.80"}}
    assert t.calls[-1][-4:] == ["pm-list", "--type=module", "--status=enabled", "--format=json"]


def test_failure_is_one_line_with_the_tail_and_no_generated_password():
    d, _ = drush(7, exit_code=1, stdout=b"Installation complete.  User name: admin  User password: Xy12ab [ok]\n",
                 stderr=b"WD php: Exception: broken profile [error]\n")  # fmt: skip
    with pytest.raises(DrushError) as e:
        d.site_install("broken", sites_subdir="x", site_name="x", site_mail="a@b.c", account_mail="a@b.c", locale=None)
    assert "exit code 1" in str(e.value) and "broken profile" in str(e.value) and "Xy12ab" not in str(e.value)


# what drush 13.3 prints when site:install's site has no database settings (drush-ops/drush#6002): the error,
# glued to frame #0 of a long backtrace
D13_TRACE = "\n".join(f"#{i} /srv/p/vendor/consolidation/x{i}.php({i}0): F{i}->call(Array)" for i in range(1, 15))
D13_STDERR = (
    ' [warning] Undefined array key "" SiteInstallCommands.php:300\n'
    " [error]  Error: Call to a member function getInstallTasks() on null in "
    "Drush\\Commands\\core\\SiteInstallCommands->validate() (line 300 of /srv/p/vendor/drush/drush/src/Commands/"
    "core/SiteInstallCommands.php) #0 /srv/p/vendor/consolidation/ValidateHookDispatcher.php(53): "
    "Drush\\Commands\\core\\SiteInstallCommands->validate(Object(CommandData))\n" + D13_TRACE + "\n#15 {main}\n"
)
# drush 8: the type right-aligned on a message's first line, the message wrapped over the next ones
D8_STDERR = (
    "WD php: Exception: broken profile: install failed half-way in          [error]\n"
    "broken_install() (line 18 of\n"
    "/var/aegir/platforms/d/profiles/broken/broken.install).\n"
    "Drush command terminated abnormally due to an unrecoverable error.     [error]\n"
)


def test_a_failure_names_the_command_and_carries_drushs_first_error_lines_and_its_last(caplog):
    d, _ = drush(10, exit_code=1, stdout=b" You are about to:\n * DROP all tables\n", stderr=D13_STDERR.encode())
    with caplog.at_level(logging.INFO, logger="aegir"), pytest.raises(DrushError) as e:
        d.site_install(
            "standard", sites_subdir="x", site_name="x", site_mail="a@b.c", account_mail="a@b.c", locale=None
        )
    message = str(e.value)
    assert message.startswith("drush site:install failed for http://example.com (exit code 1): ")
    assert '[warning] Undefined array key "" SiteInstallCommands.php:300' in message
    assert "[error] Error: Call to a member function getInstallTasks() on null in " in message
    assert "#15 {main}" in message  # the last line
    assert "ValidateHookDispatcher" not in message and "#7 " not in message  # not the backtrace
    assert (
        "command: /usr/local/bin/drush -r /var/aegir/platforms/d -l http://example.com site:install standard "
        "--account-mail=a@b.c" in message
    )
    assert e.value.exit_code == 1 and e.value.command[:2] == ["/usr/local/bin/drush", "-r"]
    # the whole output goes to the log (the run's log, through the tasks' bridge)
    (record,) = [r for r in caplog.records if r.name == "aegir.drush"]
    assert record.levelno == logging.ERROR
    assert D13_TRACE in record.getMessage() and "You are about to:" in record.getMessage()
    assert "/usr/local/bin/drush -r /var/aegir/platforms/d" in record.getMessage()


def test_a_drush8_failure_joins_its_wrapped_messages():
    d, _ = drush(7, exit_code=1, stdout=b"Exception: broken profile: install failed half-way in broken_install()\n",
                 stderr=D8_STDERR.encode())  # fmt: skip
    with pytest.raises(DrushError) as e:
        d.site_install("broken", sites_subdir="x", site_name="x", site_mail="a@b.c", account_mail="a@b.c", locale=None)
    assert (
        "[error] WD php: Exception: broken profile: install failed half-way in broken_install() (line 18 of "
        "/var/aegir/platforms/d/profiles/broken/broken.install). | "
        "[error] Drush command terminated abnormally due to an unrecoverable error." in str(e.value)
    )


def test_a_failure_never_shows_a_generated_password_nor_a_secret_file(caplog):
    from aegir.transport import SecretFile

    d, t = drush(7, exit_code=1, stderr=b"Installation complete.  User name: admin  User password: Xy12ab [ok]\n")
    d.argv = lambda *args: ["/usr/local/bin/drush", SecretFile("s3cret", prefix="--file="), *args]  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="aegir"), pytest.raises(DrushError) as e:
        d.run("status")
    assert "Xy12ab" not in str(e.value) + caplog.text and "s3cret" not in str(e.value) + caplog.text
    assert "--file=/dev/fd/<secret>" in str(e.value)


def test_output_redaction_and_missing_link():
    assert redact_output("User name: admin  User password: s3cr3t [ok]") == (
        "User name: admin  User password: ******** [ok]"
    )
    d, _ = drush(7, stdout=b"nothing useful")
    with pytest.raises(DrushError, match="no one-time login URL"):
        d.user_login()


def test_site_url_and_unsupported_majors():
    assert site_url("example.com", 80) == "http://example.com"
    assert site_url("example.com", 8080) == "http://example.com:8080"
    with pytest.raises(AegirError, match="Drupal 6 is not supported"):
        commands_for(6)


@pytest.mark.parametrize(
    ("major", "stderr", "cleared"),
    [
        # the transcript's drush 8 after running updates, and with nothing pending
        (
            7,
            b"Performed update: system_update_7085 [ok]\n'all' cache was cleared. [success]\n"
            b"Finished performing updates. [ok]\n",
            True,
        ),  # fmt: skip
        (7, b"No database updates required [success]\n", False),
        # drush 12: the update batch ends with a cache rebuild; nothing pending, no batch
        (10, b" [notice] Update completed: system_update_10100\n [success] Finished performing updates.\n", True),
        (10, b" [success] No pending updates.\n", False),
    ],
)
def test_updatedb_says_whether_it_cleared_the_caches(major, stderr, cleared):
    d, t = drush(major, stderr=stderr)
    out, did_clear = d.updatedb()
    assert t.calls[-1][-2:] == ["updatedb", "-y"]
    assert did_clear is cleared and stderr.decode().strip().splitlines()[-1].strip() in out
