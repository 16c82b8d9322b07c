"""Settings: TOML file + ``HOTPAPERS_<SECTION>__<KEY>`` environment overrides → frozen, typed.

Where the file comes from: ``--config PATH``, else ``$HOTPAPERS_CONFIG``, else ``./config.toml``
when present, else the defaults alone. Secrets are never read from the file: they come only from
the environment (``DISCORD_TOKEN``, ``X_BEARER_TOKEN``, ``HF_TOKEN``) and are held as
``SecretStr`` so they never show up in a repr, a log line or an error message.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from bot.config import HttpSettings, HttpUrl, Section, WsUrl, comma_list
from bot.core.errors import ConfigError, UnknownCategoryError
from bot.core.taxonomy import validate_category

ENV_PREFIX = "HOTPAPERS_"
CONFIG_ENV = "HOTPAPERS_CONFIG"
DEFAULT_CONFIG_FILE = Path("config.toml")
# A key containing one of these is a credential, which never belongs in the file.
_SECRET_WORDS = ("token", "secret", "password", "api_key", "apikey")


class DatabaseSettings(Section):
    url: str = "sqlite+aiosqlite:///hotpapers.db"
    echo: bool = False


class ArxivSettings(Section):
    api_url: HttpUrl = "https://export.arxiv.org/api/query"
    rss_url: HttpUrl = "https://rss.arxiv.org/rss"
    min_interval_seconds: float = Field(3.0, ge=0)  # arXiv's terms: one request every 3 s
    batch_size: int = Field(100, ge=1, le=100)
    # Categories whose daily announcements (RSS) are ingested, besides those servers follow.
    categories: Annotated[list[str], NoDecode, BeforeValidator(comma_list)] = Field(
        default_factory=list
    )

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        try:
            return list(dict.fromkeys(validate_category(c) for c in value))
        except UnknownCategoryError as exc:
            raise ValueError(exc.message) from None


class XSettings(Section):
    enabled: bool = False
    api_url: HttpUrl = "https://api.x.com/2"
    query: str = 'url:"arxiv.org" -is:retweet'
    max_results: int = Field(100, ge=10, le=100)
    max_pages: int = Field(50, ge=1)
    search_days: int = Field(7, ge=1)  # how far back recent search reaches
    # X's app-only limit for recent search: 450 requests per 15-minute window.
    requests_per_window: int = Field(450, ge=1)
    window_seconds: float = Field(900.0, gt=0)


class HackerNewsSettings(Section):
    enabled: bool = True
    api_url: HttpUrl = "https://hn.algolia.com/api/v1"
    hits_per_page: int = Field(100, ge=1, le=1000)
    max_pages: int = Field(10, ge=1)
    min_points: int = Field(0, ge=0)
    min_comments: int = Field(0, ge=0)
    # HN Algolia allows 10,000 requests per hour per IP.
    requests_per_window: int = Field(10_000, ge=1)
    window_seconds: float = Field(3600.0, gt=0)


class HuggingFaceSettings(Section):
    enabled: bool = True
    api_url: HttpUrl = "https://huggingface.co/api"
    limit: int = Field(100, ge=1, le=100)
    max_pages: int = Field(5, ge=1)
    # Anonymous Hub API callers get 500 requests per fixed 5-minute window per IP.
    requests_per_window: int = Field(500, ge=1)
    window_seconds: float = Field(300.0, gt=0)


class SourcesSettings(Section):
    x: XSettings = XSettings()
    hackernews: HackerNewsSettings = HackerNewsSettings()
    huggingface: HuggingFaceSettings = HuggingFaceSettings()


DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    # The seed's score: reposts + likes on X.
    "x": {"reposts": 1.0, "likes": 1.0},
    "bluesky": {"reposts": 1.0, "likes": 1.0},
    # One HN point is one person's vote, the same as a like.
    "hackernews": {"points": 1.0},
    # HF upvotes are scarcer than likes: a paper with 25 upvotes is a hot paper that day.
    "huggingface": {"upvotes": 2.0},
}


class RankingSettings(Section):
    threshold: float = Field(50, ge=0)
    post_threshold: float = Field(25, ge=0)
    max_posts: int = Field(10, ge=1, le=50)
    top_n: int = Field(20, ge=1, le=200)
    weights: dict[str, dict[str, float]] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    @field_validator("weights")
    @classmethod
    def _merge_default_weights(
        cls, value: dict[str, dict[str, float]]
    ) -> dict[str, dict[str, float]]:
        # Per metric: overriding likes keeps reposts; a weight of 0 switches a metric off.
        for source, weights in value.items():
            for metric, weight in weights.items():
                if not math.isfinite(weight) or weight < 0:
                    raise ValueError(f"weight of {source}.{metric} must be a number ≥ 0")
        merged = {k: dict(v) for k, v in DEFAULT_WEIGHTS.items()}
        for source, weights in value.items():
            merged.setdefault(source, {}).update(weights)
        return merged


class DiscordSettings(Section):
    api_base: HttpUrl = "https://discord.com/api/v10"
    gateway_url: WsUrl = "wss://gateway.discord.gg"
    dev_guild_id: int | None = None
    application_id: int | None = None


class DigestSettings(Section):
    repost_cooldown_days: int = Field(7, ge=0)
    grace_hours: float = Field(6.0, ge=0)


class SchedulerSettings(Section):
    ingest_interval_minutes: int = Field(60, ge=1)
    ingest_lookback_hours: float = Field(48.0, gt=0)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        # `debug` in a file or HOTPAPERS_LOGGING__LEVEL=debug means DEBUG, as logging reads it.
        return value.strip().upper() if isinstance(value, str) else value


class Secrets(BaseModel):
    """Credentials, read only from the environment."""

    model_config = ConfigDict(frozen=True)

    discord_token: SecretStr | None = None
    x_bearer_token: SecretStr | None = None
    hf_token: SecretStr | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if environ is None else environ

        def get(name: str) -> SecretStr | None:
            value = env.get(name, "").strip()
            return SecretStr(value) if value else None

        return cls(
            discord_token=get("DISCORD_TOKEN"),
            x_bearer_token=get("X_BEARER_TOKEN"),
            hf_token=get("HF_TOKEN"),
        )


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
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_ENV):
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
            "secrets come only from the environment (DISCORD_TOKEN, X_BEARER_TOKEN, HF_TOKEN)"
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
                    "DISCORD_TOKEN, X_BEARER_TOKEN and HF_TOKEN"
                )
            return f"unknown setting `{section}` (from the environment variable {name})"
    return None


def _origin(loc: tuple[Any, ...], path: Path | None, environ: Mapping[str, str]) -> str:
    """Where the offending value came from: the environment variable that set it, or the file."""
    parts = [str(part) for part in loc]
    for depth in range(len(parts), 0, -1):
        wanted = (ENV_PREFIX + "__".join(parts[:depth])).upper()
        for name in environ:
            if name.upper() == wanted:
                return f" (from the environment variable {name})"
    return f" in {path}" if path else ""


def _describe(exc: ValidationError, path: Path | None, environ: Mapping[str, str]) -> str:
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"]) or "(root)"
    where = _origin(err["loc"], path, environ)
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
    # defaults, at every depth: x_is_on() tells an explicit `sources.x.enabled` from the default.
    return Settings.model_validate(
        loaded.model_dump(exclude_unset=True) | {"secrets": loaded.secrets, "config_path": path}
    )
