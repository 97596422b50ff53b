"""The drush command lines per Drupal major (exactly what real drush accepts) and output handling."""

from __future__ import annotations

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
    d.site_install("standard", site_name="example.com", site_mail="a@b.c", account_mail="a@b.c", locale="de")
    assert t.calls == [
        [
            "/usr/local/bin/drush", "--nocolor", "-r", "/var/aegir/platforms/d", "-l", "http://example.com",
            "site-install", "standard", "--account-mail=a@b.c", "--site-mail=a@b.c", "--site-name=example.com",
            "--locale=de", "-y",
        ]
    ]  # fmt: skip


def test_drupal10_uses_drush12_names():
    d, t = drush(10, stdout=b"http://example.com/user/reset/1/1700000000/abc-_DEF/login\n")
    d.site_install("minimal", site_name="x", site_mail="a@b.c", account_mail="a@b.c", locale="en")
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
        d.site_install("broken", site_name="x", site_mail="a@b.c", account_mail="a@b.c", locale=None)
    assert "exit code 1" in str(e.value) and "broken profile" in str(e.value) and "Xy12ab" not in str(e.value)


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
