"""Deployment files: the Dockerfile, .dockerignore, compose.yaml and the systemd unit.

There is no Docker daemon where these tests run: the image is never built here. What can be
checked without one is: each file's invariants (a non-root user, the health check, the volume,
the restart policy, the hardening), that the settings each file gives the bot are settings the
bot accepts, that the health check command really tells a healthy server from an unhealthy one,
and, with ``systemd-analyze`` when it is installed, that the unit is valid.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from bot.settings import Settings, load_settings
from bot.storage.location import place_database

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "compose.yaml"
UNIT = REPO / "deploy" / "hotpapers.service"
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "API_KEY")


# -- reading the files --------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (keyword, arguments), continuation lines joined, comments
    dropped, one list per stage (the ARGs before the first FROM are stage 0)."""
    stages: list[list[tuple[str, str]]] = [[]]
    pending = ""
    for raw in DOCKERFILE.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), " ".join(arguments.split())))
    return stages


def only(stage: list[tuple[str, str]], keyword: str) -> str:
    (found,) = [arguments for name, arguments in stage if name == keyword]
    return found


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, arguments in stage:
        if name == "ENV":
            env.update(pair.split("=", 1) for pair in arguments.split())
    return env


def healthcheck_command() -> list[str]:
    arguments = only(dockerfile_stages()[-1], "HEALTHCHECK")
    options, _, command = arguments.partition(" CMD ")
    assert "--interval=" in options
    assert "--timeout=" in options
    return json.loads(command)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


_REFERENCE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def interpolate(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Compose's ``${NAME:-default}``, from ``environ`` (empty: the defaults)."""
    env = environ or {}
    return _REFERENCE.sub(lambda m: env.get(m.group(1)) or m.group(2) or "", value)


def unit() -> dict[str, list[tuple[str, str]]]:
    """The unit's sections, each a list of (key, value): keys may repeat, as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in UNIT.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


def one(section: list[tuple[str, str]], key: str) -> str:
    (value,) = values(section, key)
    return value


def settings_from(monkeypatch: pytest.MonkeyPatch, environment: Mapping[str, str]) -> Settings:
    for name, value in environment.items():
        if name.startswith("HOTPAPERS_"):
            monkeypatch.setenv(name, value)
    return load_settings()


# -- Dockerfile ---------------------------------------------------------------------------------


def test_the_image_is_built_in_stages_on_slim_python_3_12():
    args, *stages = dockerfile_stages()
    assert ("ARG", "PYTHON_VERSION=3.12") in args
    assert len(stages) == 2
    build, runtime = stages
    assert only(build, "FROM") == "python:${PYTHON_VERSION}-slim-bookworm AS build"
    assert only(runtime, "FROM") == "python:${PYTHON_VERSION}-slim-bookworm"
    assert any(name == "RUN" and "pip wheel" in arguments for name, arguments in build)
    # The runtime installs the wheels the build made, offline, and keeps none of them.
    (install,) = [a for n, a in runtime if n == "RUN" and "pip install" in a]
    assert "--mount=type=bind,from=build" in install
    assert "--no-index" in install
    assert not any(name in ("COPY", "ADD") for name, _ in runtime)


def test_the_build_copies_only_the_packages_sources():
    build = dockerfile_stages()[1]
    copied = [arguments.split()[:-1] for name, arguments in build if name == "COPY"]
    assert copied == [["pyproject.toml", "README.md"], ["bot"], ["cogs"]]
    for names in copied:
        for name in names:
            assert (REPO / name).exists(), name
            assert not docker_ignores(name), name


def test_the_bot_runs_as_an_unprivileged_user():
    runtime = dockerfile_stages()[-1]
    users = [arguments for name, arguments in runtime if name == "USER"]
    assert users, "no USER: the bot would run as root"
    user, _, group = users[-1].partition(":")
    assert user not in ("root", "0")
    assert group not in ("root", "0")
    created = " ".join(a for n, a in runtime if n == "RUN" and "useradd" in a)
    assert f"--uid {user}" in created
    assert "--system" in created


def test_the_data_volume_the_web_server_and_the_signals():
    runtime = dockerfile_stages()[-1]
    assert only(runtime, "VOLUME") == '["/data"]'
    env = image_env(runtime)
    assert env["HOTPAPERS_STORAGE__DATA_DIR"] == "/data"
    assert env["HOTPAPERS_WEB__ENABLED"] == "true"
    assert env["HOTPAPERS_WEB__HOST"] == "0.0.0.0"  # noqa: S104 - inside the container
    assert only(runtime, "EXPOSE") == env["HOTPAPERS_WEB__PORT"] == "8080"
    assert only(runtime, "STOPSIGNAL") == "SIGTERM"
    assert json.loads(only(runtime, "ENTRYPOINT")) == ["hotpapers"]
    assert json.loads(only(runtime, "CMD")) == ["run"]
    # The data directory exists, owned by the bot's user, before the volume is mounted on it
    # (a new named volume takes its owner and mode from there).
    created = " ".join(a for n, a in runtime if n == "RUN" and "install --directory" in a)
    assert "--owner=hotpapers" in created
    assert "--mode=0700 /data" in created


def test_the_image_environment_is_settings_the_bot_accepts(monkeypatch):
    settings = settings_from(monkeypatch, image_env(dockerfile_stages()[-1]))
    assert settings.web.enabled
    assert (settings.web.host, settings.web.port) == ("0.0.0.0", 8080)  # noqa: S104
    assert settings.storage.data_dir == Path("/data")
    # The default database is a file in the volume.
    placed = place_database(settings.database.url, settings.storage.data_dir)
    assert placed == "sqlite+aiosqlite:////data/hotpapers.db"


def test_the_healthcheck_uses_the_standard_library_on_healthz():
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    script = command[2]
    assert "urllib.request" in script
    assert "http://127.0.0.1:%s/healthz" in script
    assert "'8080'" in script  # the default port; HOTPAPERS_WEB__PORT when set
    assert not any(tool in script for tool in ("curl", "wget"))


# -- the health check command, for real ---------------------------------------------------------


@asynccontextmanager
async def health_server(status: int) -> AsyncIterator[int]:
    """A 127.0.0.1 server answering /healthz with ``status``; yields its port."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok" if status == 200 else "down"}, status=status)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def run_check(command: list[str], port: int) -> int:
    """The check as Docker runs it (``python`` is this interpreter), against ``port``."""
    argv = [sys.executable, *command[1:]]
    argv[-1] = argv[-1].replace("8080", str(port))  # compose's check names its port
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env={"HOTPAPERS_WEB__PORT": str(port), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), timeout=30)


def compose_healthcheck() -> list[str]:
    test = compose()["services"]["bot"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return test[1:]


@pytest.mark.parametrize("source", ["Dockerfile", "compose.yaml"])
async def test_the_health_check_passes_on_200_only(source, unused_tcp_port):
    command = healthcheck_command() if source == "Dockerfile" else compose_healthcheck()
    async with health_server(200) as port:
        assert await run_check(command, port) == 0
    async with health_server(503) as port:
        assert await run_check(command, port) != 0
    assert await run_check(command, unused_tcp_port) != 0  # nothing listening


# -- .dockerignore ------------------------------------------------------------------------------


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def docker_ignores(path: str) -> bool:
    """Whether the build context leaves ``path`` out: the last matching pattern decides, and a
    pattern matching a folder covers what is in it."""
    lines = DOCKERIGNORE.read_text("utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _docker_pattern(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


@pytest.mark.parametrize(
    "path",
    ["pyproject.toml", "README.md", "bot/cli.py", "bot/web/templates/base.html", "cogs/digest.py"],
)
def test_the_build_context_has_the_sources(path):
    assert not docker_ignores(path)


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".git/config",
        ".venv/bin/python",
        "tests/fakes/discord/server.py",
        "bench/bench_fanout.py",
        "config.toml",
        "hotpapers.db",
        "bot/__pycache__/cli.cpython-312.pyc",
        "bot/storage/old.db",
        "deploy/hotpapers.service",
    ],
)
def test_the_build_context_leaves_out_the_rest(path):
    assert docker_ignores(path)


# -- compose.yaml -------------------------------------------------------------------------------


def test_compose_runs_the_bot_always_and_postgresql_in_a_profile():
    services = compose()["services"]
    assert set(services) == {"bot", "postgres"}
    bot, postgres = services["bot"], services["postgres"]
    assert "profiles" not in bot
    assert bot["build"] == "."
    assert bot["restart"] == "unless-stopped"
    assert postgres["profiles"] == ["postgres"]
    assert postgres["image"] == "postgres:16"
    # Without the profile the bot starts alone; with it, once PostgreSQL answers.
    assert bot["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "/healthz" in " ".join(bot["healthcheck"]["test"])


def test_compose_keeps_data_in_named_volumes():
    model = compose()
    declared = set(model["volumes"])
    assert declared == {"hotpapers-data", "postgres-data"}
    services = model["services"]
    assert "hotpapers-data:/data" in services["bot"]["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def test_compose_takes_secrets_from_the_env_file_only():
    model = compose()
    assert model["services"]["bot"]["env_file"] == [".env"]
    for name, service in model["services"].items():
        for key, value in _environment(service).items():
            if any(word in key.upper() for word in SECRET_WORDS):
                # A reference to .env with no default: the value is never in this file.
                assert re.fullmatch(r"\$\{\w+(:-)?\}", value), (name, key, value)
    for text in _strings(model):
        assert "DISCORD_TOKEN=" not in text
        assert not re.search(r"postgres(ql)?(\+\w+)?://[^@/\s]*:[^@/\s]*@", text), text


def test_compose_gives_the_bot_its_database_url_from_the_environment(monkeypatch):
    env = _environment(compose()["services"]["bot"])
    assert env["HOTPAPERS_DATABASE__URL"].startswith("${HOTPAPERS_DATABASE__URL:-")
    # Unset: SQLite in the volume; set (in .env or the shell): that database.
    defaults = {key: interpolate(value) for key, value in env.items()}
    settings = settings_from(monkeypatch, defaults)
    assert settings.web.enabled
    assert settings.web.port == 8080
    placed = place_database(settings.database.url, settings.storage.data_dir or Path())
    assert placed == "sqlite+aiosqlite:////data/hotpapers.db"
    postgres = "postgresql+asyncpg://hotpapers@postgres:5432/hotpapers"
    chosen = interpolate(env["HOTPAPERS_DATABASE__URL"], {"HOTPAPERS_DATABASE__URL": postgres})
    assert chosen == postgres
    # The password the server is made with is the one the bot's driver reads (PGPASSWORD).
    server = _environment(compose()["services"]["postgres"])
    assert server["POSTGRES_PASSWORD"] == "${PGPASSWORD:-}"
    assert server["POSTGRES_USER"] == server["POSTGRES_DB"] == "hotpapers"


# -- the systemd unit ---------------------------------------------------------------------------


def test_the_unit_restarts_on_failure_within_limits():
    sections = unit()
    assert set(sections) == {"Unit", "Service", "Install"}
    service, ordering = sections["Service"], sections["Unit"]
    assert one(service, "Restart") == "on-failure"
    assert one(service, "RestartSec")
    assert one(service, "RestartPreventExitStatus") == "2"  # a bad configuration stays down
    assert int(one(ordering, "StartLimitBurst")) >= 1
    assert one(ordering, "StartLimitIntervalSec")
    assert one(ordering, "After") == one(ordering, "Wants") == "network-online.target"
    assert one(service, "ExecStart").endswith("/hotpapers run")
    assert one(service, "KillSignal") == "SIGTERM"
    assert one(sections["Install"], "WantedBy") == "multi-user.target"


def test_the_unit_runs_as_a_dynamic_user_with_its_state_directory(monkeypatch):
    service = unit()["Service"]
    assert one(service, "DynamicUser") == "yes"
    assert one(service, "StateDirectory") == "hotpapers"
    assert one(service, "StateDirectoryMode") == "0700"
    assert one(service, "EnvironmentFile") == "/etc/hotpapers/env"
    environment = dict(v.split("=", 1) for v in values(service, "Environment"))
    assert environment == {"HOTPAPERS_STORAGE__DATA_DIR": "%S/hotpapers"}
    # %S is /var/lib for a system service: settings the bot accepts.
    expanded = {key: value.replace("%S", "/var/lib") for key, value in environment.items()}
    settings = settings_from(monkeypatch, expanded)
    assert settings.storage.data_dir == Path("/var/lib/hotpapers")
    # Secrets only in the EnvironmentFile: no setting of the unit names one.
    for section in unit().values():
        for key, value in section:
            assert not any(word in value.upper() for word in SECRET_WORDS), (key, value)


HARDENING = {
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
}


def test_the_unit_is_hardened():
    service = unit()["Service"]
    for key, expected in HARDENING.items():
        assert values(service, key) == [expected], key
    assert values(service, "SystemCallFilter")[0] == "@system-service"
    # Not ProcSubset=pid: the bot reads /proc/sys/kernel/random/boot_id (bot/services/owner.py).
    assert not values(service, "ProcSubset")


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _checkable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart on this environment's hotpapers (verify checks that it exists)."""
    program = Path(sys.executable).with_name("hotpapers")
    assert program.is_file(), f"no hotpapers command beside {sys.executable}"
    text = UNIT.read_text("utf-8").replace("/opt/hotpapers/bin/hotpapers", str(program))
    copy = tmp_path / "hotpapers.service"
    copy.write_text(text, "utf-8")
    return copy


@needs_systemd_analyze
def test_systemd_analyze_verifies_the_unit(tmp_path):
    result = subprocess.run(  # noqa: S603 - systemd-analyze on a file this test wrote
        ["systemd-analyze", "verify", str(_checkable_unit(tmp_path))],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # not even an ignored line


@needs_systemd_analyze
def test_systemd_analyze_rates_the_unit_exposure_low(tmp_path):
    result = subprocess.run(  # noqa: S603 - systemd-analyze on a file this test wrote
        ["systemd-analyze", "security", "--offline=yes", str(_checkable_unit(tmp_path))],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "--offline" in result.stderr or "unrecognized option" in result.stderr:
        pytest.skip("this systemd-analyze cannot rate a unit file offline (systemd < 250)")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout  # systemd calls up to 2.0 "OK"


MDWE_PROBE = textwrap.dedent(
    """
    import contextlib, ctypes, io, mmap, sys

    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(77)  # the kernel has no PR_SET_MDWE (Linux < 6.3)
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        pass
    else:
        sys.exit("writable and executable memory was still allowed")
    import aiohttp, asyncpg, discord, lxml.etree, sqlalchemy
    import bot.cli
    from bot.render.chart import warm_up
    warm_up()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = bot.cli.main(["demo"])
    assert code == 0 and "Hot Papers" in out.getvalue(), code
    print("ok")
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_MDWE is Linux's")
def test_the_bot_runs_without_writable_executable_memory(tmp_path):
    # MemoryDenyWriteExecute=yes is only safe if nothing the bot runs (CPython, its extension
    # modules, matplotlib, the demo's whole pipeline) maps memory writable and executable. The
    # kernel's own switch for the same rule (prctl PR_SET_MDWE) is set, then all of it runs.
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", MDWE_PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    if result.returncode == 77:
        pytest.skip("the kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
