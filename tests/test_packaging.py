"""The wheel: what it carries, and that the installed command runs from anywhere without the repo.

Built offline (``pip wheel --no-build-isolation --no-index``) from a copy of the package's sources,
so that the build writes nothing into the working tree; installed without dependencies into a new
virtualenv that sees this environment's packages; run from an empty working directory.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot import __version__
from bot.storage.engine import head_revision

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "cogs")
DIST_INFO = f"hotpapers-{__version__}.dist-info"
BUILD_TIMEOUT_S = 180


@dataclass(frozen=True)
class Built:
    wheel: Path
    sources: Path  # the copy the wheel was built from
    venv: Path
    home: Path  # an empty working directory, HOME and data directory live below it

    @property
    def names(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.namelist()

    def read(self, name: str) -> str:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.read(name).decode("utf-8")

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``argv[0]`` from the new virtualenv's bin/, from the empty directory."""
        program = self.venv / "bin" / argv[0]
        return subprocess.run(  # noqa: S603 - a program of the virtualenv this test made
            [str(program), *argv[1:]],
            cwd=self.home / "cwd",
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def environment(self, extra: dict[str, str]) -> dict[str, str]:
        # Nothing of the developer's: no PYTHONPATH, no settings, no tokens.
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home / "home"),
            "XDG_DATA_HOME": str(self.home / "xdg-data"),
            "LANG": "C.UTF-8",
            **extra,
        }


def _pip(*argv: str) -> None:
    result = subprocess.run(  # noqa: S603 - this interpreter's pip, fixed arguments
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *argv],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
        env={**os.environ, "PIP_NO_INDEX": "1", "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("packaging")
    sources = root / "src"
    sources.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, sources / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, sources / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    dist = root / "dist"
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(sources))
    (wheel,) = dist.glob("hotpapers-*.whl")

    venv = root / "venv"
    subprocess.run(  # noqa: S603 - this interpreter's venv module
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
    )
    _pip("--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel))
    # The dependencies come from this environment: a .pth line puts its site-packages after the
    # new one's (the installed `bot` comes first). A plain path runs none of that directory's
    # own .pth files, so the editable install of the repository stays out.
    purelib = subprocess.run(  # noqa: S603 - the new virtualenv's interpreter
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    (Path(purelib) / "outer-environment.pth").write_text(
        sysconfig.get_path("purelib") + "\n", "utf-8"
    )
    home = root / "run"
    for folder in ("cwd", "home"):
        (home / folder).mkdir(parents=True)
    return Built(wheel, sources, venv, home)


# -- what the wheel carries ---------------------------------------------------------------------


def test_the_wheel_carries_the_packages_and_nothing_else(built: Built):
    names = built.names
    assert {name.split("/", 1)[0] for name in names} == {*PACKAGES, DIST_INFO}
    for name in names:
        assert not name.startswith(("tests/", "bench/", "deploy/")), name
        assert "fakes/discord" not in name, name
        assert "conftest" not in name, name
        assert "__pycache__" not in name, name


def test_every_file_of_the_packages_is_in_the_wheel(built: Built):
    # Code and data alike: a template or migration missing from package-data fails here, not in
    # production. The comparison is with the copy the wheel was built from.
    shipped = {name for name in built.names if not name.startswith(DIST_INFO)}
    sources = {
        path.relative_to(built.sources).as_posix()
        for package in PACKAGES
        for path in (built.sources / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert shipped == sources
    for needed in (
        "bot/py.typed",
        "bot/core/data/taxonomy.json",
        "bot/fakes/data/hot-papers-2020-12-22.json",  # the offline demo's day
        "bot/storage/migrations/env.py",
        "bot/storage/migrations/script.py.mako",
        f"bot/storage/migrations/versions/{head_revision()}_",
    ):
        assert any(name.startswith(needed) for name in shipped), needed


def test_the_metadata_names_the_command_and_the_runtime_dependencies(built: Built):
    metadata = email.parser.Parser().parsestr(built.read(f"{DIST_INFO}/METADATA"))
    requires = metadata.get_all("Requires-Dist") or []
    runtime = {r.split(";")[0].strip() for r in requires if "extra ==" not in r}
    names = {r.split(">")[0].split("[")[0].split("=")[0].split("<")[0].strip() for r in runtime}
    assert {"discord.py", "platformdirs", "sqlalchemy", "alembic"} <= names
    # Test tools are extras only: the fake Discord's validator is not installed in production.
    for test_only in ("jsonschema", "pytest", "hypothesis", "pyyaml"):
        assert test_only not in {n.lower() for n in names}, test_only
        assert any(r.startswith(test_only) and 'extra == "test"' in r for r in requires)
    entry_points = built.read(f"{DIST_INFO}/entry_points.txt")
    assert "hotpapers = bot.cli:main" in entry_points


# -- the installed command ----------------------------------------------------------------------


def test_the_installed_command_answers_help(built: Built):
    result = built.run("hotpapers", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: hotpapers")
    for command in ("run", "demo", "db", "fetch", "digest"):
        assert command in result.stdout


def test_the_installed_demo_runs_offline_from_an_empty_directory(built: Built):
    result = built.run("hotpapers", "demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("---\ntitle: Hot Papers 2020-12-22\n")
    assert "arxiv.org/abs/" in result.stdout
    assert list((built.home / "cwd").iterdir()) == []  # it wrote nothing where it ran
    assert not (built.home / "xdg-data").exists()  # nor made a data directory


def test_the_installed_package_migrates_a_database_in_its_data_directory(built: Built):
    data = built.home / "state"
    result = built.run("hotpapers", "db", "upgrade", HOTPAPERS_STORAGE__DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"database upgraded from revision (empty) to {head_revision()}\n"
    assert (data / "hotpapers.db").is_file()


def test_the_installed_package_imports_nothing_from_the_repository(built: Built):
    # The demo in the installed interpreter, then every module it loaded: all from the new
    # virtualenv or this environment's packages, none from the repository (../shared
    # included), and no test-only dependency.
    probe = textwrap.dedent(
        """
        import contextlib, io, sys
        import bot.cli
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            code = bot.cli.main(["demo"])
        print(code)
        print(bot.cli.__file__)
        for name, module in sorted(sys.modules.items()):
            print(name, getattr(module, "__file__", None) or "")
        """
    )
    result = built.run("python", "-c", probe)
    assert result.returncode == 0, result.stderr
    code, cli_file, *modules = result.stdout.splitlines()
    assert code == "0"
    assert Path(cli_file).is_relative_to(built.venv)
    loaded = dict(line.partition(" ")[::2] for line in modules)
    for test_only in ("jsonschema", "tests", "pytest", "yaml"):
        assert test_only not in loaded, test_only
    repository = [REPO / folder for folder in (*PACKAGES, "tests", "bench")]
    for name, file in loaded.items():
        if file:
            assert not any(Path(file).is_relative_to(r) for r in repository), (name, file)
            assert not Path(file).is_relative_to(REPO.parent / "shared"), (name, file)
