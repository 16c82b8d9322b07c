"""Settings: TOML file + ``HOTPAPERS_<SECTION>__<KEY>`` environment overrides → frozen, typed.

Where the file comes from: ``--config PATH``, else ``$HOTPAPERS_CONFIG``, else ``./config.toml``
when present, else the defaults alone. Secrets are never read from the file: they come only from
the environment (``DISCORD_TOKEN`` and each source's, named in its registry entry) and are held as
``SecretStr`` so they never show up in a repr, a log line or an error message.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from bot.config import HttpSettings as HttpSettings
from bot.config import HttpUrl, Section, WsUrl, comma_list
from bot.core.errors import ConfigError
from bot.core.shards import check_shards
from bot.sources.arxiv import ArxivSettings as ArxivSettings
from bot.sources.bluesky import BlueskySettings as BlueskySettings
from bot.sources.hackernews import HackerNewsSettings as HackerNewsSettings
from bot.sources.huggingface import HuggingFaceSettings as HuggingFaceSettings
from bot.sources.registry import BY_KEY, REGISTRY, SECRET_VARIABLES, default_weights
from bot.sources.x import XSettings as XSettings

ENV_PREFIX = "HOTPAPERS_"
CONFIG_ENV = "HOTPAPERS_CONFIG"
DEFAULT_CONFIG_FILE = Path("config.toml")
# A key containing one of these is a credential, which never belongs in the file.
_SECRET_WORDS = ("token", "secret", "password", "api_key", "apikey")


class DatabaseSettings(Section):
    url: str = "sqlite+aiosqlite:///hotpapers.db"
    echo: bool = False


def _sources_model() -> type[BaseModel]:
    """``[sources.<key>]`` for every registered source, each with its own settings model."""
    fields: dict[str, Any] = {
        entry.key: (entry.settings_model, Field(default_factory=entry.settings_model))
        for entry in REGISTRY
    }
    return create_model("SourcesSettings", __base__=Section, **fields)


if TYPE_CHECKING:
    SourcesSettings = Section  # its fields come from the registry, unknown to a type checker
else:
    SourcesSettings = _sources_model()


class RankingSettings(Section):
    threshold: float = Field(50, ge=0)
    post_threshold: float = Field(25, ge=0)
    max_posts: int = Field(10, ge=1, le=50)
    top_n: int = Field(20, ge=1, le=200)
    weights: dict[str, dict[str, float]] = Field(default_factory=default_weights)
    # Field mode (``/digest settings ranking:field``): a paper counts when at least this many
    # people posted it and it is in this top share of its cohort (its category, its arXiv day).
    field_min_posters: int = Field(2, ge=1, le=100)
    field_top_percent: float = Field(10.0, gt=0, le=100)

    @field_validator("weights")
    @classmethod
    def _merge_default_weights(
        cls, value: dict[str, dict[str, float]]
    ) -> dict[str, dict[str, float]]:
        # Per metric: overriding likes keeps reposts; a weight of 0 switches a metric off.
        # A typo (`favourites`) or a count the source does not report would weigh nothing:
        # refused, naming the key (``key`` extends the error's location: see _describe).
        for source, weights in value.items():
            found = BY_KEY.get(source)
            if found is None:
                raise PydanticCustomError(
                    "unknown_source",
                    "unknown source (sources: {valid})",
                    {"key": (source,), "valid": ", ".join(sorted(BY_KEY))},
                )
            for metric, weight in weights.items():
                if metric not in found.counts:
                    raise PydanticCustomError(
                        "unknown_metric",
                        "unknown metric for {name} (its metrics: {valid})",
                        {
                            "key": (source, metric),
                            "name": found.name,
                            "valid": ", ".join(found.counts),
                        },
                    )
                if not math.isfinite(weight) or weight < 0:
                    raise ValueError(f"weight of {source}.{metric} must be a number ≥ 0")
        merged = default_weights()
        for source, weights in value.items():
            merged.setdefault(source, {}).update(weights)
        return merged


class DiscordSettings(Section):
    api_base: HttpUrl = "https://discord.com/api/v10"
    gateway_url: WsUrl = "wss://gateway.discord.gg"
    # Discord ids (snowflakes): positive, and below 2**63 (a timestamp fills their top bits).
    dev_guild_id: int | None = Field(None, ge=1, lt=2**63)
    application_id: int | None = Field(None, ge=1, lt=2**63)
    # The bot's one budget of REST requests, shared by every digest: a little under Discord's
    # global 50 per second (interaction answers don't count against it).
    requests_per_second: float = Field(45.0, gt=0, le=50)
    # Digests being posted at once. The budget above sets the pace (about nine digests a
    # second); this bounds memory and the writers queued on SQLite's one write lock (2,000 at
    # once ran into "database is locked" at 10,000 servers).
    max_concurrent_digests: int = Field(256, ge=1)
    # Sharding (README: Scaling out). None: one unsharded connection, every guild. A count alone:
    # this process runs all of its shards. With ids: only those shards, and only their guilds'
    # digests; other processes (on PostgreSQL) run the other ids with the same count.
    shard_count: int | None = Field(None, ge=1)
    # HOTPAPERS_DISCORD__SHARD_IDS=0,1 reads as a list, as a JSON list does.
    shard_ids: Annotated[list[int] | None, NoDecode, BeforeValidator(comma_list)] = None

    @field_validator("shard_ids")
    @classmethod
    def _ids_of_the_count(cls, value: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if value is None or "shard_count" not in info.data:
            return value  # no ids, or a bad shard_count already reported on its own
        checked = check_shards(info.data["shard_count"], value)
        return None if checked is None else list(checked)


class DigestSettings(Section):
    repost_cooldown_days: int = Field(7, ge=0)
    grace_hours: float = Field(6.0, ge=0)


class SchedulerSettings(Section):
    ingest_interval_minutes: int = Field(60, ge=1)
    ingest_lookback_hours: float = Field(48.0, gt=0)
    # On PostgreSQL one process leads (ingestion and the streams): a follower stands for it,
    # and the leader checks its lock's connection, this often. At most 30 s, so that a dead
    # leader is replaced within a minute (README: Scaling out).
    leader_poll_seconds: float = Field(10.0, gt=0, le=30)


class StorageSettings(Section):
    # Where the SQLite database and the bot's state live when database.url names a relative
    # file. None: the platform's user data directory (platformdirs), e.g.
    # ~/.local/share/hotpapers on Linux. Resolved and created by bot.storage.location when a
    # command that keeps state starts.
    data_dir: Path | None = None
    # Metric snapshots older than this are thinned by the scheduler to one a day per post
    # (the day's last reading, which charts draw).
    keep_snapshots_days: int = Field(90, ge=1)

    @field_validator("data_dir", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        # An empty HOTPAPERS_STORAGE__DATA_DIR= would read as Path(""), the working directory.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a folder (leave it unset for the default)")
        return value


class WebSettings(Section):
    # The web server (health, metrics, public archive): in the `run` process when enabled,
    # or alone with `hotpapers web`.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # The public address of the site, for absolute links in feeds (None: from the request).
    public_url: HttpUrl | None = None


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        # `debug` in a file or HOTPAPERS_LOGGING__LEVEL=debug means DEBUG, as logging reads it.
        return value.strip().upper() if isinstance(value, str) else value


class Secrets(BaseModel):
    """Credentials, read only from the environment: the Discord token and each source's own
    (``bot.sources.registry``), keyed by the environment variable that holds it."""

    model_config = ConfigDict(frozen=True)

    discord_token: SecretStr | None = None
    sources: Mapping[str, SecretStr] = Field(default_factory=dict)

    def get(self, variable: str) -> SecretStr | None:
        return self.sources.get(variable)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if environ is None else environ

        def get(name: str) -> SecretStr | None:
            value = env.get(name, "").strip()
            return SecretStr(value) if value else None

        found = {name: get(name) for name in SECRET_VARIABLES}
        return cls(
            discord_token=get("DISCORD_TOKEN"),
            sources={name: value for name, value in found.items() if value is not None},
        )


SECRET_NAMES = ", ".join(("DISCORD_TOKEN", *SECRET_VARIABLES))


class Settings(BaseSettings):
    """Every setting of hotpapers. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    arxiv: ArxivSettings = ArxivSettings()
    sources: SourcesSettings = SourcesSettings()
    ranking: RankingSettings = RankingSettings()
    discord: DiscordSettings = DiscordSettings()
    digest: DigestSettings = DigestSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    storage: StorageSettings = StorageSettings()
    web: WebSettings = WebSettings()
    logging: LoggingSettings = LoggingSettings()
    secrets: Secrets = Field(default_factory=Secrets, exclude=True)
    config_path: Path | None = Field(default=None, exclude=True)


_SECTIONS = frozenset(Settings.model_fields) - {"secrets", "config_path"}


class _DictSource(PydanticBaseSettingsSource):
    """Serves the already-parsed TOML document with the lowest priority."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def resolve_config_path(
    explicit: str | Path | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """``--config`` wins, then ``$HOTPAPERS_CONFIG``, then ``./config.toml`` if it exists."""
    env = os.environ if environ is None else environ
    # An empty path is a mistake (an unset shell variable, say), not a wish for the defaults.
    if isinstance(explicit, str) and not explicit.strip():
        raise ConfigError("--config is empty: give the path of a TOML settings file")
    if explicit:
        return Path(explicit)
    if CONFIG_ENV in env:
        if not env[CONFIG_ENV].strip():
            raise ConfigError(
                f"{CONFIG_ENV} is set but empty: give the path of a TOML settings file, or unset it"
            )
        return Path(env[CONFIG_ENV])
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    secret = _secret_key(data)
    if secret is not None:
        raise ConfigError(
            f"config file {path}: `{secret}` does not belong in a file; "
            f"secrets come only from the environment ({SECRET_NAMES})"
        )
    return data


def _secret_key(data: Mapping[str, Any], prefix: str = "") -> str | None:
    """The dotted path of the first key, at any depth, that looks like a credential."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if any(word in key.lower() for word in _SECRET_WORDS):
            return path
        if isinstance(value, Mapping):
            found = _secret_key(value, f"{path}.")
            if found is not None:
                return found
    return None


def _unknown_env_section(environ: Mapping[str, str]) -> str | None:
    """A ``HOTPAPERS_<SECTION>__…`` variable whose section is not a settings section.

    pydantic-settings ignores such variables silently, so a typo such as
    ``HOTPAPERS_SOURCE__X__API_URL`` would leave the default in place without a word. Variables
    without ``__`` (``HOTPAPERS_CONFIG``) are not settings and are left alone.
    """
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or "__" not in upper:
            continue
        section = upper.removeprefix(ENV_PREFIX).split("__", 1)[0].lower()
        if section not in _SECTIONS:
            if section == "secrets":
                return (
                    f"{name} is not read: secrets come only from the environment variables "
                    f"{SECRET_NAMES}"
                )
            return f"unknown setting `{section}` (from the environment variable {name})"
    return None


def _origin(loc: tuple[Any, ...], path: Path | None, environ: Mapping[str, str]) -> str:
    """Where the offending value came from: the environment variable that set it, or the file."""
    parts = [str(part) for part in loc]
    for depth in range(len(parts), 0, -1):
        wanted = (ENV_PREFIX + "__".join(parts[:depth])).upper()
        for name in environ:
            # Or a key inside the offending one: HOTPAPERS_RANKING__WEIGHTS__TYPO__LIKES.
            inside = depth == len(parts) and name.upper().startswith(wanted + "__")
            if name.upper() == wanted or inside:
                return f" (from the environment variable {name})"
    return f" in {path}" if path else ""


def _describe(exc: ValidationError, path: Path | None, environ: Mapping[str, str]) -> str:
    err = exc.errors()[0]
    # A validator of a whole table names the offending key inside it (ranking.weights.x.likes).
    loc = (*err["loc"], *err.get("ctx", {}).get("key", ()))
    key = ".".join(str(part) for part in loc) or "(root)"
    where = _origin(loc, path, environ)
    if err["type"] == "extra_forbidden":
        return f"unknown setting `{key}`{where}"
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    return f"setting `{key}`: {err['msg']}{shown}{where}"


def load_settings(
    config: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Load settings; a bad file or value raises :class:`ConfigError` naming the key.

    ``HOTPAPERS_*`` overrides are read from the process environment; ``environ`` only replaces
    where the config path and the secrets are looked up (tests use it).
    """
    env = dict(os.environ if environ is None else environ)
    path = resolve_config_path(config, env)
    data = _read_toml(path) if path else {}
    unknown = _unknown_env_section(os.environ)
    if unknown is not None:
        raise ConfigError(unknown)

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _DictSource(settings_cls, data))

    try:
        loaded = _Loaded(**overrides, secrets=Secrets.from_environ(env), config_path=path)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, os.environ)) from None
    except SettingsError as exc:
        # pydantic-settings could not decode an environment value (e.g. not JSON for a table).
        raise ConfigError(
            f"an environment override could not be read: {exc} "
            "(a table such as HOTPAPERS_RANKING__WEIGHTS must be JSON, or set its keys one by one)"
        ) from None
    # exclude_unset keeps which keys were written (in the file or the environment) apart from
    # defaults, at every depth: a factory tells an explicit `enabled` from the default.
    return Settings.model_validate(
        loaded.model_dump(exclude_unset=True) | {"secrets": loaded.secrets, "config_path": path}
    )
