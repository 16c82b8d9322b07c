"""Settings: file precedence, env overrides, defaults, the example file, errors and secrets."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from bot.core.errors import ConfigError
from bot.settings import Secrets, Settings, load_settings
from bot.sources.x import is_on

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"
TOKENS = {
    "DISCORD_TOKEN": "discord-sekrit-MTIzNDU2Nzg5MDEyMzQ1Njc4.Gx",
    "X_BEARER_TOKEN": "AAAAAAAAAAAAAAAAAAAAAx-sekrit%2Fbearer",
    "HF_TOKEN": "hf_sekritHuggingFaceToken",
}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults and key names ---------------------------------------------------------------------


def test_defaults_and_key_names():
    s = load_settings()
    assert s.config_path is None
    assert s.database.url == "sqlite+aiosqlite:///hotpapers.db"
    assert s.arxiv.api_url == "https://export.arxiv.org/api/query"
    assert s.arxiv.rss_url == "https://rss.arxiv.org/rss"
    assert s.sources.x.enabled is False
    assert s.sources.x.api_url == "https://api.x.com/2"
    assert s.sources.hackernews.enabled is True
    assert s.sources.hackernews.api_url == "https://hn.algolia.com/api/v1"
    assert s.sources.huggingface.enabled is True
    assert s.sources.huggingface.api_url == "https://huggingface.co/api"
    assert s.ranking.threshold == 50
    assert s.ranking.post_threshold == 25
    assert s.ranking.max_posts == 10
    # The seed's score: retweets + favorites.
    assert s.ranking.weights["x"] == {"reposts": 1.0, "likes": 1.0}
    assert s.secrets == Secrets()


def test_settings_are_frozen():
    s = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        s.ranking.threshold = 1  # type: ignore[misc]


# -- where the file comes from ------------------------------------------------------------------


def test_precedence_config_flag_then_env_then_cwd_then_defaults(tmp_path, monkeypatch):
    flag = write(tmp_path / "flag.toml", "[ranking]\nthreshold = 11\n")
    env = write(tmp_path / "env.toml", "[ranking]\nthreshold = 22\n")
    write(tmp_path / "config.toml", "[ranking]\nthreshold = 33\n")  # tmp_path is the cwd

    monkeypatch.setenv("HOTPAPERS_CONFIG", str(env))
    assert load_settings(flag).ranking.threshold == 11
    assert load_settings(flag).config_path == flag
    assert load_settings().ranking.threshold == 22
    assert load_settings().config_path == env

    monkeypatch.delenv("HOTPAPERS_CONFIG")
    assert load_settings().ranking.threshold == 33
    assert load_settings().config_path == Path("config.toml")

    (tmp_path / "config.toml").unlink()
    assert load_settings().ranking.threshold == 50
    assert load_settings().config_path is None


def test_a_named_file_that_is_missing_is_an_error_not_the_defaults(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    monkeypatch.setenv("HOTPAPERS_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match=r"gone\.toml does not exist"):
        load_settings()


# -- environment overrides ----------------------------------------------------------------------


ENV_OVERRIDES = [
    ("HOTPAPERS_DATABASE__URL", "sqlite+aiosqlite:////srv/hp.db", ("database", "url")),
    ("HOTPAPERS_DATABASE__ECHO", "true", ("database", "echo")),
    ("HOTPAPERS_HTTP__RETRIES", "1", ("http", "retries")),
    ("HOTPAPERS_HTTP__USER_AGENT", "agent/1", ("http", "user_agent")),
    ("HOTPAPERS_ARXIV__API_URL", "http://127.0.0.1:1/api/query", ("arxiv", "api_url")),
    ("HOTPAPERS_ARXIV__RSS_URL", "http://127.0.0.1:1/rss", ("arxiv", "rss_url")),
    ("HOTPAPERS_SOURCES__X__API_URL", "http://127.0.0.1:2/2", ("sources", "x", "api_url")),
    ("HOTPAPERS_SOURCES__X__ENABLED", "true", ("sources", "x", "enabled")),
    ("HOTPAPERS_SOURCES__X__MAX_PAGES", "3", ("sources", "x", "max_pages")),
    (
        "HOTPAPERS_SOURCES__HACKERNEWS__API_URL",
        "http://127.0.0.1:3/api/v1",
        ("sources", "hackernews", "api_url"),
    ),
    ("HOTPAPERS_SOURCES__HACKERNEWS__ENABLED", "false", ("sources", "hackernews", "enabled")),
    (
        "HOTPAPERS_SOURCES__HUGGINGFACE__API_URL",
        "http://127.0.0.1:4/api",
        ("sources", "huggingface", "api_url"),
    ),
    ("HOTPAPERS_SOURCES__HUGGINGFACE__ENABLED", "0", ("sources", "huggingface", "enabled")),
    ("HOTPAPERS_RANKING__THRESHOLD", "40", ("ranking", "threshold")),
    ("HOTPAPERS_RANKING__POST_THRESHOLD", "5", ("ranking", "post_threshold")),
    ("HOTPAPERS_RANKING__MAX_POSTS", "3", ("ranking", "max_posts")),
    ("HOTPAPERS_RANKING__TOP_N", "7", ("ranking", "top_n")),
    ("HOTPAPERS_DISCORD__API_BASE", "http://127.0.0.1:5/api/v10", ("discord", "api_base")),
    ("HOTPAPERS_DISCORD__DEV_GUILD_ID", "1234", ("discord", "dev_guild_id")),
    ("HOTPAPERS_DIGEST__GRACE_HOURS", "2.5", ("digest", "grace_hours")),
    (
        "HOTPAPERS_SCHEDULER__INGEST_INTERVAL_MINUTES",
        "15",
        ("scheduler", "ingest_interval_minutes"),
    ),
    ("HOTPAPERS_STORAGE__KEEP_SNAPSHOTS_DAYS", "30", ("storage", "keep_snapshots_days")),
    ("HOTPAPERS_WEB__PORT", "9090", ("web", "port")),
    ("HOTPAPERS_LOGGING__LEVEL", "WARNING", ("logging", "level")),
]


def _get(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("name", "raw", "path"), ENV_OVERRIDES, ids=[e[0] for e in ENV_OVERRIDES])
def test_every_section_can_be_overridden_from_the_environment(monkeypatch, name, raw, path):
    default = _get(load_settings(), path)
    monkeypatch.setenv(name, raw)
    value = _get(load_settings(), path)
    assert value != default
    expected = {"true": True, "false": False, "0": False}.get(raw, raw)
    assert str(value) == str(expected) or value == type(value)(expected)


def test_every_section_has_an_environment_override_test():
    tested = {path[0] for _, _, path in ENV_OVERRIDES}
    sections = set(Settings.model_fields) - {"secrets", "config_path"}
    assert sections <= tested
    sources = {path[1] for _, _, path in ENV_OVERRIDES if path[0] == "sources"}
    assert sources == {"x", "hackernews", "huggingface"}


def test_environment_beats_the_file_key_by_key(tmp_path, monkeypatch):
    path = write(
        tmp_path / "c.toml",
        '[ranking]\nthreshold = 7\npost_threshold = 3\n[sources.x]\napi_url = "http://file/2"\n',
    )
    monkeypatch.setenv("HOTPAPERS_RANKING__THRESHOLD", "9")
    monkeypatch.setenv("HOTPAPERS_SOURCES__X__API_URL", "http://env/2")
    s = load_settings(path)
    assert s.ranking.threshold == 9  # the environment wins...
    assert s.ranking.post_threshold == 3  # ...only for the keys it sets
    assert s.sources.x.api_url == "http://env/2"
    assert s.sources.x.query == 'url:"arxiv.org" -is:retweet'


def test_logging_level_is_case_insensitive(monkeypatch):
    monkeypatch.setenv("HOTPAPERS_LOGGING__LEVEL", "debug")
    assert load_settings().logging.level == "DEBUG"


# -- config.example.toml -------------------------------------------------------------------------


def _leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, info in model.model_fields.items():
        if info.exclude:  # secrets and config_path are not settings of the file
            continue
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += _leaf_paths(annotation, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def _documented_keys(text: str) -> tuple[set[tuple[str, ...]], dict[tuple[str, ...], str]]:
    """Key paths written in the file, commented-out ones (``# key = value``) included."""
    keys: set[tuple[str, ...]] = set()
    lines: dict[tuple[str, ...], str] = {}
    section: tuple[str, ...] = ()
    for line in text.splitlines():
        header = re.fullmatch(r"\[([\w.]+)\]\s*", line)
        if header:
            section = tuple(header.group(1).split("."))
            for depth in range(1, len(section) + 1):
                keys.add(section[:depth])
            continue
        key = re.match(r"#?\s*([a-z_]+)\s*=", line)
        if key and section:
            keys.add((*section, key.group(1)))
            lines[(*section, key.group(1))] = line.lstrip("# ")
    return keys, lines


def test_config_example_documents_every_setting():
    keys, _ = _documented_keys(EXAMPLE.read_text("utf-8"))
    leaves = _leaf_paths(Settings)
    assert len(leaves) > 40
    missing = [".".join(p) for p in leaves if p not in keys]
    assert not missing, f"config.example.toml lacks {missing}"


def test_config_example_loads_and_its_values_are_the_defaults():
    example = load_settings(EXAMPLE)
    assert example.model_dump() == Settings().model_dump()
    # Keys left commented out show their default too (or an example where the default is None).
    _, lines = _documented_keys(EXAMPLE.read_text("utf-8"))
    written = tomllib.loads(EXAMPLE.read_text("utf-8"))
    for path in _leaf_paths(Settings):
        node: Any = written
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            continue
        default = _get(Settings(), path)
        if default is None:
            continue
        commented = tomllib.loads(lines[path])[path[-1]]
        assert commented == default, ".".join(path)


def test_env_override_examples_in_the_example_file_are_real_keys(monkeypatch):
    text = EXAMPLE.read_text("utf-8")
    examples = re.findall(r"^#\s+(HOTPAPERS_[A-Z_]+)=(\S+)$", text, re.MULTILINE)
    assert len(examples) >= 3
    for name, value in examples:
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.sources.x.api_url == "http://127.0.0.1:8080/2"


# -- bad configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[ranking]\nthresold = 1\n", "ranking.thresold"),
        ("[rankings]\nthreshold = 1\n", "rankings"),
        ("[sources.x]\nurl = 'http://x'\n", "sources.x.url"),
        ("[sources.mastodon]\nenabled = true\n", "sources.mastodon"),
        ("verbose = true\n", "verbose"),
    ],
)
def test_unknown_key_names_the_key(tmp_path, toml, key):
    path = write(tmp_path / "c.toml", toml)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert f"unknown setting `{key}`" in err.value.message
    assert str(path) in err.value.message


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[ranking]\nthreshold = 'lots'\n", "ranking.threshold"),
        ("[ranking]\nthreshold = -1\n", "ranking.threshold"),
        ("[ranking]\nmax_posts = 0\n", "ranking.max_posts"),
        ("[http]\ntimeout_seconds = 0\n", "http.timeout_seconds"),
        ("[sources.x]\nenabled = 'maybe'\n", "sources.x.enabled"),
        ("[sources.x]\nmax_results = 5\n", "sources.x.max_results"),
        ("[logging]\nlevel = 'LOUD'\n", "logging.level"),
        ("[ranking]\nweights = 3\n", "ranking.weights"),
        ("ranking = 3\n", "ranking"),
    ],
)
def test_bad_value_names_the_key_and_the_file(tmp_path, toml, key):
    path = write(tmp_path / "c.toml", toml)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert f"setting `{key}`" in err.value.message
    assert str(path) in err.value.message
    assert "\n" not in err.value.message


def test_bad_value_from_the_environment_names_the_variable(tmp_path, monkeypatch):
    path = write(tmp_path / "c.toml", "[ranking]\nthreshold = 60\n")
    monkeypatch.setenv("HOTPAPERS_RANKING__THRESHOLD", "lots")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "setting `ranking.threshold`" in err.value.message
    assert "HOTPAPERS_RANKING__THRESHOLD" in err.value.message
    assert str(path) not in err.value.message  # the file is not where the bad value is


@pytest.mark.parametrize(
    "name",
    ["HOTPAPERS_SOURCE__X__API_URL", "HOTPAPERS_RANKIN__THRESHOLD", "HOTPAPERS_RANKING__FOO"],
)
def test_a_misspelt_environment_override_is_an_error_not_ignored(monkeypatch, name):
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert name in err.value.message
    assert "unknown setting" in err.value.message


def test_environment_variables_that_are_not_settings_are_left_alone(monkeypatch):
    monkeypatch.setenv("HOTPAPERS_SHARED", "/somewhere")  # a test-suite variable, no "__"
    assert load_settings().ranking.threshold == 50


def test_invalid_toml(tmp_path):
    path = write(tmp_path / "c.toml", "[ranking\nthreshold = 1\n")
    with pytest.raises(ConfigError, match=r"is not valid TOML.*line 1"):
        load_settings(path)


def test_unreadable_files(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(tmp_path)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[http]\nuser_agent = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.toml is not UTF-8 text"):
        load_settings(latin1)
    locked = write(tmp_path / "locked.toml", "")

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)  # root reads mode-000 files, so refuse here
    with pytest.raises(ConfigError, match=r"locked\.toml is not readable"):
        load_settings(locked)


# -- secrets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("token = 'abc'\n", "token"),
        ("discord_token = 'abc'\n", "discord_token"),
        ("[secrets]\nx_bearer_token = 'abc'\n", "secrets"),
        ("[discord]\ntoken = 'abc'\n", "discord.token"),
        ("[sources.x]\nbearer_token = 'abc'\n", "sources.x.bearer_token"),
        ("[sources.huggingface]\nhf_token = 'abc'\n", "sources.huggingface.hf_token"),
    ],
)
def test_a_secret_in_the_file_is_refused(tmp_path, toml, key):
    path = write(tmp_path / "c.toml", toml)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert f"`{key}` does not belong in a file" in err.value.message
    assert "environment" in err.value.message
    assert "abc" not in err.value.message


def test_secrets_in_hotpapers_variables_are_refused(monkeypatch):
    monkeypatch.setenv("HOTPAPERS_SECRETS__X_BEARER_TOKEN", "abc")
    with pytest.raises(ConfigError, match="X_BEARER_TOKEN") as err:
        load_settings()
    assert "abc" not in err.value.message


def test_secrets_come_from_the_environment_and_never_show(monkeypatch, caplog):
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, f"  {value}\n")
    caplog.set_level(logging.DEBUG)
    s = load_settings()
    assert s.secrets.discord_token == SecretStr(TOKENS["DISCORD_TOKEN"])
    assert s.secrets.get("X_BEARER_TOKEN") == SecretStr(TOKENS["X_BEARER_TOKEN"])
    assert s.secrets.get("HF_TOKEN") == SecretStr(TOKENS["HF_TOKEN"])
    shown = [
        repr(s),
        str(s),
        repr(s.secrets),
        str(s.secrets),
        str(s.model_dump()),
        s.model_dump_json(),
        str(s.secrets.model_dump()),
        caplog.text,
    ]
    for text in shown:
        for value in TOKENS.values():
            assert value not in text
    assert "secrets" not in s.model_dump()


def test_blank_tokens_are_no_tokens(monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "   ")
    assert load_settings().secrets.get("X_BEARER_TOKEN") is None


# -- X is on only with a token --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "enabled", "on"),
    [
        (None, None, False),  # the default: off
        ("tok", None, True),  # a token alone turns X on
        ("tok", "true", True),
        ("tok", "false", False),  # an explicit `enabled = false` wins over the token
        (None, "true", False),  # enabled without a token: off, with a warning
    ],
)
def test_x_is_on_only_with_a_token(monkeypatch, caplog, token, enabled, on):
    if token:
        monkeypatch.setenv("X_BEARER_TOKEN", token)
    if enabled:
        monkeypatch.setenv("HOTPAPERS_SOURCES__X__ENABLED", enabled)
    caplog.set_level(logging.WARNING, logger="bot.sources.x")
    assert x_is_on(load_settings()) is on
    warned = "X_BEARER_TOKEN is not set" in caplog.text
    assert warned is (enabled == "true" and not token)


def x_is_on(settings: Settings) -> bool:
    """What the X factory decides: on with a token, unless ``enabled = false`` was written."""
    x = settings.sources.x
    return is_on(
        x, "enabled" in x.model_fields_set, settings.secrets.get("X_BEARER_TOKEN") is not None
    )


def test_x_enabled_false_in_the_file_beats_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "tok")
    assert x_is_on(load_settings(write(tmp_path / "on.toml", "[sources.x]\nquery = 'q'\n")))
    off = write(tmp_path / "off.toml", "[sources.x]\nenabled = false\n")
    assert not x_is_on(load_settings(off))


# --- review follow-ups: URLs, lists and tables from the environment -------------------------


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("HOTPAPERS_ARXIV__API_URL", "notaurl", "arxiv.api_url"),
        ("HOTPAPERS_SOURCES__X__API_URL", "ftp://x/2", "sources.x.api_url"),
        ("HOTPAPERS_DISCORD__GATEWAY_URL", "http://gateway", "discord.gateway_url"),
        ("HOTPAPERS_RANKING__WEIGHTS", "x", "HOTPAPERS_RANKING__WEIGHTS"),
        ("HOTPAPERS_RANKING__WEIGHTS__X__LIKES", "-1", "ranking.weights"),
        ("HOTPAPERS_RANKING__WEIGHTS__X__LIKES", "nan", "ranking.weights"),
        ("HOTPAPERS_ARXIV__CATEGORIES", "cs.LF", "arxiv.categories"),
    ],
)
def test_bad_urls_tables_and_weights_are_config_errors(monkeypatch, variable, value, needle):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert needle in info.value.message


def test_categories_from_the_environment_as_a_comma_list_or_json(monkeypatch):
    monkeypatch.setenv("HOTPAPERS_ARXIV__CATEGORIES", "cs.lg, cs.CV,cs.LG")
    assert load_settings().arxiv.categories == ["cs.LG", "cs.CV"]
    monkeypatch.setenv("HOTPAPERS_ARXIV__CATEGORIES", '["stat.ML"]')
    assert load_settings().arxiv.categories == ["stat.ML"]


# -- sharding -------------------------------------------------------------------------------------


def test_shards_are_unset_by_default_and_read_from_the_file(tmp_path):
    assert (Settings().discord.shard_count, Settings().discord.shard_ids) == (None, None)
    path = write(tmp_path / "c.toml", "[discord]\nshard_count = 4\nshard_ids = [3, 1]\n")
    discord = load_settings(path).discord
    assert discord.shard_count == 4
    assert discord.shard_ids == [1, 3]
    assert (
        load_settings(write(tmp_path / "d.toml", "[discord]\nshard_count = 2\n")).discord.shard_ids
        is None
    )


@pytest.mark.parametrize("ids", ["0,2", "[0, 2]", " 2 , 0 "])
def test_shard_ids_from_the_environment_as_a_list_or_json(monkeypatch, ids):
    monkeypatch.setenv("HOTPAPERS_DISCORD__SHARD_COUNT", "3")
    monkeypatch.setenv("HOTPAPERS_DISCORD__SHARD_IDS", ids)
    assert load_settings().discord.shard_ids == [0, 2]


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ("shard_count = 0", "discord.shard_count", "greater than or equal to 1"),
        ("shard_ids = [0]", "discord.shard_ids", "shard_ids need shard_count"),
        ("shard_count = 2\nshard_ids = [0, 2]", "discord.shard_ids", "shard 2 is not a shard"),
        ("shard_count = 2\nshard_ids = [1, 1]", "discord.shard_ids", "shard 1 more than once"),
        ("shard_count = 2\nshard_ids = []", "discord.shard_ids", "shard_ids is empty"),
        ("shard_count = 2\nshard_ids = [-1]", "discord.shard_ids", "shard -1 is not a shard"),
        ("shard_count = 2\nshard_ids = ['a']", "discord.shard_ids.0", "valid integer"),
    ],
)
def test_bad_shard_settings_name_the_key(tmp_path, toml, key, words):
    path = write(tmp_path / "c.toml", f"[discord]\n{toml}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.message.startswith(f"setting `{key}`: ")
    assert words in err.value.message
    assert str(path) in err.value.message
    assert "\n" not in err.value.message
