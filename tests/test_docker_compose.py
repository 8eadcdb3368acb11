"""The deployment files agree with config/settings.py: docker-compose.yml, .env.example, .ci/run.

Docker does not run in CI, so these read the files. Settings are parsed as text, not imported:
the point is to catch a variable named in one place and spelled differently in another.
No database needed.
"""

from __future__ import annotations

import ast
import re
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat")
REQUIRED = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL")
ENV_HELPERS = {"envstr", "envbool", "envint", "envfloat", "envlist"}


def _variable_read_by(node: ast.AST) -> str | None:
    """The name in os.getenv("X") / os.environ.get("X") / os.environ["X"] / envint("X")."""
    if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
        key = node.slice
    elif isinstance(node, ast.Call) and node.args:
        func = ast.unparse(node.func)
        if func not in {"os.getenv", "os.environ.get", *ENV_HELPERS}:
            return None
        key = node.args[0]
    else:
        return None
    return key.value if isinstance(key, ast.Constant) else None


def settings_variables() -> set[str]:
    tree = ast.parse((ROOT / "config" / "settings.py").read_text())
    return {name for node in ast.walk(tree) if (name := _variable_read_by(node))}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "KEY=value" list form
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


# ${NAME}, ${NAME:-default}, ${NAME:?message}: what compose fills in before anything reads the file.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rule>:?[-?][^}]*)?\}")


def interpolated(value: str, placeholder: str = "value") -> str:
    """`value` as compose hands it over, with each variable set to `placeholder`."""
    return INTERPOLATION.sub(placeholder, value)


def command_text(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def test_settings_parser_finds_what_settings_reads():
    # Guards the tests below from passing vacuously if the parser stopped finding names.
    assert {
        "DEBUG",
        "EARSHOT_DEVELOPMENT",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_TASK_TIME_LIMIT",
        "POLL_DISPATCH_EVERY_SECONDS",
        "X_BEARER_TOKEN",
        "POLL_MAX_PAGES",
        "LOG_LEVEL",
    } <= settings_variables()


def test_it_defines_the_production_services(services):
    assert {"postgres", "redis", *APP_SERVICES} <= set(services)


def test_postgres_and_redis_have_healthchecks(services):
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])


def test_postgres_keeps_its_data_in_a_named_volume(compose, services):
    mounts = {
        volume.split(":")[0]: volume.split(":")[1] for volume in services["postgres"]["volumes"]
    }
    named = [source for source, target in mounts.items() if target == "/var/lib/postgresql/data"]
    assert named, "nothing is mounted on /var/lib/postgresql/data"
    assert named[0] in (compose.get("volumes") or {})


def test_postgres_is_version_15(services):
    assert services["postgres"]["image"] == "postgres:15"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_healthy_postgres_and_redis(services, name):
    depends_on = services[name]["depends_on"]
    for dependency in ("postgres", "redis"):
        assert depends_on[dependency]["condition"] == "service_healthy"


def test_app_services_share_one_environment(services):
    web, worker, beat = (environment(services[name]) for name in APP_SERVICES)
    assert web == worker == beat


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_set_only_variables_settings_reads(services, name):
    unknown = set(environment(services[name])) - settings_variables()
    assert not unknown, f"{name} sets variables settings.py never reads: {sorted(unknown)}"


# Development switches have no place in production.
NOT_FOR_PRODUCTION = {"DEBUG", "EARSHOT_DEVELOPMENT"}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_pass_every_setting_through(services, name):
    """A variable set in the shell or .env reaches the app: nothing settings reads is lost."""
    missing = settings_variables() - set(environment(services[name])) - NOT_FOR_PRODUCTION
    assert missing == set()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_set_the_required_variables(services, name):
    env = environment(services[name])
    for variable in REQUIRED:
        assert env.get(variable), f"{name} does not set {variable}"


def test_secret_key_comes_from_the_host_and_is_required(services):
    for name in APP_SERVICES:
        assert environment(services[name])["SECRET_KEY"].startswith("${SECRET_KEY:?")


@pytest.mark.parametrize("variable", ["DATABASE_URL", "REDIS_URL"])
def test_service_urls_name_compose_services(services, variable):
    for name in APP_SERVICES:
        host = urlsplit(interpolated(environment(services[name])[variable])).hostname
        assert host in services, f"{name}: {variable} points at {host!r}, not a compose service"


def test_web_migrates_then_serves_with_gunicorn(services):
    command = command_text(services["web"])
    assert "gunicorn config.wsgi" in command
    assert command.index("migrate") < command.index("gunicorn")


def test_worker_and_beat_run_celery(services):
    assert "celery -A config worker" in command_text(services["worker"])
    assert "celery -A config beat" in command_text(services["beat"])


def test_exactly_one_service_runs_beat(services):
    runs_beat = [name for name, service in services.items() if " beat" in command_text(service)]
    assert runs_beat == ["beat"]
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1


def duration_seconds(value: str) -> float:
    """A compose duration such as "1m30s", "100s" or "40s", in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"unreadable duration {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def settings_default(variable: str) -> str:
    """The default settings.py gives `variable` (envint("X", "90") -> "90")."""
    tree = ast.parse((ROOT / "config" / "settings.py").read_text())
    for node in ast.walk(tree):
        if _variable_read_by(node) == variable and len(node.args) > 1:
            return node.args[1].value
    raise AssertionError(f"settings.py reads no {variable} with a default")


def test_the_app_services_are_the_production_profile(services):
    for name in APP_SERVICES:
        assert services[name]["profiles"] == ["production"]
    # The database and Redis start in any profile (and on their own for local work).
    assert "profiles" not in services["postgres"] and "profiles" not in services["redis"]


def test_the_worker_scales(services):
    """`docker compose --profile production up --scale worker=N` needs nothing fixed per
    container: no name, no published port, no host name, no replica count."""
    worker = services["worker"]
    for fixed in ("container_name", "ports", "hostname"):
        assert fixed not in worker, f"the worker sets {fixed}: it could not be scaled"
    assert "replicas" not in worker.get("deploy", {})


def test_only_the_worker_runs_celery_workers(services):
    runs_workers = [name for name, s in services.items() if "worker" in command_text(s).split()]
    assert runs_workers == ["worker"]


def test_gunicorn_workers_come_from_the_environment_and_stop_gracefully(services):
    command = interpolated(command_text(services["web"]), placeholder="5")
    assert re.search(r"--workers 5(\s|$)", command)
    assert "--workers ${WEB_WORKERS:-" in command_text(services["web"])
    graceful = int(re.search(r"--graceful-timeout (\d+)", command).group(1))
    assert duration_seconds(services["web"]["stop_grace_period"]) > graceful


def test_a_stopped_worker_has_time_to_finish_its_task(services):
    """Docker kills a container stop_grace_period after SIGTERM: longer than a task may run."""
    time_limit = int(settings_default("CELERY_TASK_TIME_LIMIT"))
    assert duration_seconds(services["worker"]["stop_grace_period"]) > time_limit


def test_signals_reach_the_processes(services):
    for name in APP_SERVICES:
        assert services[name]["init"] is True
    # exec: gunicorn replaces the shell, so SIGTERM reaches gunicorn itself.
    assert "exec gunicorn" in command_text(services["web"])


def test_web_is_healthy_by_its_healthz(services):
    test = " ".join(services["web"]["healthcheck"]["test"])
    assert "config.probe" in test and "/healthz" in test
    assert (ROOT / "config" / "probe.py").exists()


def test_worker_and_beat_wait_for_a_healthy_web(services):
    for name in ("worker", "beat"):
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"


def test_the_worker_checks_itself_by_name(services):
    test = " ".join(services["worker"]["healthcheck"]["test"])
    assert "inspect ping" in test and "celery@$$HOSTNAME" in test


SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY")


def test_no_secret_is_written_in_the_file():
    """Every secret is interpolated from the host, and required (${NAME:?...}): no default."""
    text = (ROOT / "docker-compose.yml").read_text()
    secrets = [m for m in INTERPOLATION.finditer(text) if SECRET_NAME.search(m.group("name"))]
    assert {m.group("name") for m in secrets} >= {
        "SECRET_KEY",
        "FIELD_ENCRYPTION_KEYS",
        "POSTGRES_PASSWORD",
    }
    for match in secrets:
        assert (match.group("rule") or "").startswith(":?"), f"{match.group(0)} is not required"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_secret_variables_have_no_value_in_the_file(services, name):
    for variable, value in environment(services[name]).items():
        if SECRET_NAME.search(variable) and value is not None:
            assert value.startswith("${" + variable + ":?"), f"{variable} is written in the file"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_production_has_no_development_switch(services, name):
    assert not NOT_FOR_PRODUCTION & set(environment(services[name]))


def test_whitenoise_serves_the_collected_static_files():
    settings_text = (ROOT / "config" / "settings.py").read_text()
    assert '"whitenoise.middleware.WhiteNoiseMiddleware"' in settings_text
    assert "whitenoise.storage.CompressedManifestStaticFilesStorage" in settings_text


def test_dockerfile_collects_static_files_at_build():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "collectstatic --noinput" in dockerfile
    assert "requirements.lock" in dockerfile


def env_example() -> list[str]:
    return (ROOT / ".env.example").read_text().splitlines()


def test_env_example_lists_every_variable_settings_reads():
    listed = {line.split("=", 1)[0] for line in env_example() if re.match(r"^[A-Z_0-9]+=", line)}
    missing = settings_variables() - listed
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_env_example_explains_each_variable():
    lines = env_example()
    for number, line in enumerate(lines):
        if re.match(r"^[A-Z_0-9]+=", line):
            assert lines[number - 1].startswith("#"), f"no comment above {line!r}"


def test_env_example_holds_no_secret():
    secrets = (
        "SECRET_KEY",
        "FIELD_ENCRYPTION_KEYS",
        "POSTGRES_PASSWORD",
        "X_BEARER_TOKEN",
        "X_CONSUMER_SECRET",
        "X_ACCESS_TOKEN_SECRET",
    )
    for line in env_example():
        name, _, value = line.partition("=")
        if name in secrets:
            assert value == "", f"{name} has a value in .env.example"


def ci_script() -> Path:
    return ROOT / ".ci" / "run"


def test_ci_runs_make_test():
    commands = [
        line.strip()
        for line in ci_script().read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert any(re.match(r"^(exec\s+)?make test(\s|$)", command) for command in commands)
    assert "set -euo pipefail" in commands


def test_ci_script_is_executable():
    assert ci_script().stat().st_mode & stat.S_IXUSR
