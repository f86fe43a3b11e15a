"""Deployment settings, read by real processes.

Without SECRET_KEY, a deployment never runs on a key from the repository: the first process
generates one, keeps it in the data directory (readable by its user only), says so once, and every
later process of the deployment reads the same key. What `check --deploy` asks of an HTTPS
deployment can all be set from the environment."""

import os
import stat
import subprocess
import sys

from tests.conftest import ROOT

PRINT_SETTINGS = (
    "from django.conf import settings; "
    "print(settings.SECRET_KEY); "
    "print(settings.DATABASES['default']['NAME']); "
    "print(settings.DATABASES['channels']['NAME'])"
)
GENERATED_NOTICE = "SECRET_KEY is not set: generated one"
# What an HTTPS deployment sets; `check --deploy` must then find nothing left to fix.
HTTPS_DEPLOYMENT = {
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}


def embedded_env(data_dir, **extra: str) -> dict[str, str]:
    """The environment of a fresh embedded deployment: no key, no database or Redis URL."""
    env = dict(os.environ)
    for name in ("SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL", "CHANNELS_DB_PATH"):
        env.pop(name, None)
    env.update(DATA_DIR=str(data_dir), **extra)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[str, str]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out, err


def test_it_generates_a_private_key_in_the_data_directory_and_says_so_once(tmp_path):
    data_dir = tmp_path / "data"
    env = embedded_env(data_dir)

    out, err = finish(manage("shell", "--no-imports", "-c", PRINT_SETTINGS, env=env))
    key, database, channels = out.split()

    key_file = data_dir / "secret_key"
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key not in (ROOT / "agentproj" / "settings.py").read_text()
    assert len(key) >= 50
    assert err.count(GENERATED_NOTICE) == 1
    assert str(key_file) in err
    assert database == str(data_dir / "db.sqlite3")
    assert channels == str(data_dir / "channels.sqlite3")

    again, err_again = finish(manage("shell", "--no-imports", "-c", PRINT_SETTINGS, env=env))
    assert again.split()[0] == key
    assert GENERATED_NOTICE not in err_again


def test_processes_starting_together_share_one_key(tmp_path):
    env = embedded_env(tmp_path / "data")

    processes = [manage("shell", "--no-imports", "-c", PRINT_SETTINGS, env=env) for _ in range(4)]
    results = [finish(process) for process in processes]

    keys = {out.split()[0] for out, _ in results}
    assert len(keys) == 1
    assert sum(err.count(GENERATED_NOTICE) for _, err in results) == 1
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["secret_key"]


def test_a_key_from_the_environment_wins_and_no_file_is_written(tmp_path):
    env = embedded_env(tmp_path / "data", SECRET_KEY="k" * 20 + "-from-the-environment-" + "z" * 20)

    out, err = finish(manage("shell", "--no-imports", "-c", PRINT_SETTINGS, env=env))

    assert out.split()[0] == env["SECRET_KEY"]
    assert GENERATED_NOTICE not in err
    assert not (tmp_path / "data" / "secret_key").exists()


def test_check_deploy_finds_nothing_that_configuration_cannot_fix(tmp_path):
    env = embedded_env(tmp_path / "data", **HTTPS_DEPLOYMENT)

    out, err = finish(manage("check", "--deploy", "--fail-level", "WARNING", env=env))

    assert "no issues" in out, out + err


def test_the_proxy_ssl_header_is_read_from_the_environment(tmp_path):
    env = embedded_env(tmp_path / "data", SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")
    show = "from django.conf import settings; print(repr(settings.SECURE_PROXY_SSL_HEADER))"

    out, _ = finish(manage("shell", "--no-imports", "-c", show, env=env))

    assert out.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')"
