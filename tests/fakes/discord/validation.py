"""Checks requests made to the fake Discord against Discord's OpenAPI spec and documented limits."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from jsonschema.exceptions import ValidationError

log = logging.getLogger(__name__)

SPEC_ENV = "HOTPAPERS_DISCORD_SPEC"

# Documented limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits,
# .../interactions/receiving-and-responding, .../components/reference, .../channel#start-thread...).
CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
CHOICES_MAX = 25
CHOICE_NAME_MAX = 100
CHOICE_VALUE_MAX = 100
ACTION_ROWS_MAX = 5
ROW_BUTTONS_MAX = 5
BUTTON_LABEL_MAX = 80
CUSTOM_ID_MAX = 100
SELECT_OPTIONS_MAX = 25
COMPONENTS_V2_MAX = 40
MODAL_TITLE_MAX = 45
THREAD_NAME_MAX = 100
AUTO_ARCHIVE_DURATIONS = frozenset({60, 1440, 4320, 10080})
COMMAND_NAME_MAX = 32
COMMAND_DESCRIPTION_MAX = 100
COMMAND_OPTIONS_MAX = 25
COMMAND_TOTAL_CHARS_MAX = 4000
INTERACTION_DEADLINE_S = 3.0

FLAG_EPHEMERAL = 1 << 6
FLAG_COMPONENTS_V2 = 1 << 15
_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
_MAX_ERROR_CHARS = 300


class SpecNotFoundError(FileNotFoundError):
    """The OpenAPI spec is missing: validation cannot run, and must not silently pass."""


def default_spec_path() -> Path:
    """``$HOTPAPERS_DISCORD_SPEC``, else ``<repo>/../shared/discord-api-spec/openapi.json``."""
    override = os.environ.get(SPEC_ENV)
    if override:
        return Path(override)
    repo_root = Path(__file__).resolve().parents[3]
    return repo_root.parent / "shared" / "discord-api-spec" / "openapi.json"


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if isinstance(value, str):
        dt.datetime.fromisoformat(value)
    return True


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    # Discord accepts attachment://name for files uploaded with the same message.
    return bool(parts.scheme) and (bool(parts.netloc) or parts.scheme == "attachment")


@dataclass(frozen=True, slots=True)
class Operation:
    """One documented method+path of the spec."""

    method: str
    template: str
    operation_id: str
    pattern: re.Pattern[str]
    literal_segments: int
    body_schema: dict[str, Any] | None
    body_required: bool
    parameters: tuple[dict[str, Any], ...]


@dataclass(slots=True)
class Report:
    """What one request broke: ``rejections`` Discord itself would answer 400 to;
    ``policy`` are this project's rules (never ping, answer in time), served but recorded."""

    rejections: list[str] = field(default_factory=list)
    policy: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[str]:
        return [*self.rejections, *self.policy]

    def extend(self, other: Report) -> None:
        self.rejections.extend(other.rejections)
        self.policy.extend(other.policy)


class OpenAPISpec:
    """Discord's OpenAPI 3.1 document: operation lookup and JSON Schema 2020-12 validation."""

    def __init__(self, document: dict[str, Any], source: str = "<memory>") -> None:
        self.source = source
        self.document = document
        components = dict(document.get("components", {}))
        schemas = dict(components.get("schemas", {}))
        # Quirk: the spec types snowflakes as strings only, but Discord accepts JSON integers
        # and discord.py sends them (allowed_mentions.users, message_reference.message_id, ...).
        if "SnowflakeType" in schemas:
            schemas["SnowflakeType"] = {
                "anyOf": [schemas["SnowflakeType"], {"type": "integer", "minimum": 0}]
            }
        components["schemas"] = schemas
        self._components = components
        self.operations: list[Operation] = list(self._operations())
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}

    @classmethod
    def load(cls, path: Path | str | None = None) -> OpenAPISpec:
        """Load (once per path) the spec; a missing file raises :class:`SpecNotFoundError`."""
        return _load_spec(str(Path(path) if path is not None else default_spec_path()))

    def _operations(self) -> Iterator[Operation]:
        for template, item in self.document.get("paths", {}).items():
            shared = tuple(item.get("parameters", ()))
            regex = "".join(
                f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}]+\})", template)
                if part
            )
            literals = sum(1 for seg in template.split("/") if seg and not seg.startswith("{"))
            for method, op in item.items():
                if method == "parameters" or not isinstance(op, dict):
                    continue
                body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
                yield Operation(
                    method=method.upper(),
                    template=template,
                    operation_id=op.get("operationId", f"{method} {template}"),
                    pattern=re.compile(f"^{regex}$"),
                    literal_segments=literals,
                    body_schema=body.get("schema"),
                    body_required=bool(op.get("requestBody", {}).get("required")),
                    parameters=shared + tuple(op.get("parameters", ())),
                )

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation for ``path`` (relative to /api/v10); literal segments win over params."""
        best: tuple[Operation, dict[str, str]] | None = None
        for op in self.operations:
            if op.method != method.upper():
                continue
            found = op.pattern.match(path)
            if found and (best is None or op.literal_segments > best[0].literal_segments):
                best = (op, found.groupdict())
        return best

    def _validator(self, op: Operation, key: str, schema: dict[str, Any]) -> Any:
        cache_key = (op.operation_id, key)
        validator = self._validators.get(cache_key)
        if validator is None:
            # Local "#/components/..." refs resolve against the root: carry components along.
            root = {**schema, "components": self._components}
            validator = jsonschema.Draft202012Validator(root, format_checker=_FORMATS)
            self._validators[cache_key] = validator
        return validator

    def validate_body(self, op: Operation, body: Any) -> list[str]:
        if op.body_schema is None:
            if body not in (None, {}, b""):
                return [f"{op.operation_id}: takes no JSON body"]
            return []
        if body is None:
            return [f"{op.operation_id}: a JSON body is required"] if op.body_required else []
        validator = self._validator(op, "body", op.body_schema)
        return [_describe(e) for e in _relevant(validator.iter_errors(body))]

    def validate_parameters(
        self, op: Operation, path_params: Mapping[str, str], query: Mapping[str, str]
    ) -> list[str]:
        errors = []
        known_query = set()
        for param in op.parameters:
            name, where = str(param.get("name")), param.get("in")
            schema = param.get("schema", {})
            if where == "query":
                known_query.add(name)
                if name in query:
                    errors += self._check_param(op, f"query {name}", query[name], schema)
            elif where == "path" and name in path_params:
                errors += self._check_param(op, f"path {name}", path_params[name], schema)
        errors += [
            f"{op.operation_id}: unknown query parameter {name!r}"
            for name in query
            if name not in known_query
        ]
        return errors

    def _check_param(
        self, op: Operation, label: str, raw: str, schema: dict[str, Any]
    ) -> list[str]:
        value = _coerce_param(raw, self._resolve(schema))
        validator = self._validator(op, label, schema)
        return [f"{label}: {_describe(e)}" for e in _relevant(validator.iter_errors(value))]

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self._components["schemas"].get(name, {})
        return schema


@functools.lru_cache(maxsize=4)
def _load_spec(path: str) -> OpenAPISpec:
    file = Path(path)
    if not file.is_file():
        raise SpecNotFoundError(
            f"Discord OpenAPI spec not found at {file} (set {SPEC_ENV} or check out shared/)"
        )
    log.debug("loading Discord OpenAPI spec from %s", file)
    return OpenAPISpec(json.loads(file.read_text(encoding="utf-8")), source=str(file))


def _coerce_param(raw: str, schema: dict[str, Any]) -> Any:
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if "boolean" in types and raw.lower() in {"true", "false", "1", "0"}:
        return raw.lower() in {"true", "1"}
    if "integer" in types and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return raw


def _relevant(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    for error in errors:
        # The spec's oneOf unions sometimes overlap (a value valid under two branches);
        # Discord treats them as discriminated unions, so ambiguity is not an error.
        if error.validator == "oneOf" and not error.context:
            continue
        yield error


def _branch_misses(errors: list[ValidationError]) -> bool:
    """A union branch that does not apply: wrong JSON type at its root, or wrong ``type`` tag."""
    for e in errors:
        if e.validator == "type" and not e.relative_path:
            return True
        if list(e.relative_path) == ["type"] and e.validator in ("enum", "const"):
            return True
    return False


def _leaves(error: ValidationError) -> list[ValidationError]:
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        viable = {k: v for k, v in branches.items() if not _branch_misses(v)}
        if not viable:
            return [error]
        best = min(viable.values(), key=len)
        return [
            leaf for sub in best if sub.validator != "oneOf" or sub.context for leaf in _leaves(sub)
        ]
    return [error]


def _describe(error: ValidationError) -> str:
    parts = []
    for leaf in _leaves(error) or [error]:
        where = "/".join(str(p) for p in leaf.absolute_path) or "(body)"
        parts.append(f"{where}: {_truncate(leaf.message)}")
    return "; ".join(parts)


# -- documented limits and project policy ---------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def check_embeds(embeds: Any, where: str = "embeds") -> list[str]:
    """Embed limits, including the 6000-character total across a message's embeds."""
    if not isinstance(embeds, list):
        return []
    errors = []
    if len(embeds) > EMBEDS_MAX:
        errors.append(f"{where}: {len(embeds)} embeds (max {EMBEDS_MAX})")
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            continue
        here = f"{where}/{i}"
        title, desc = _text(embed.get("title")), _text(embed.get("description"))
        footer = _text((embed.get("footer") or {}).get("text"))
        author = _text((embed.get("author") or {}).get("name"))
        for label, text, limit in (
            ("title", title, EMBED_TITLE_MAX),
            ("description", desc, EMBED_DESCRIPTION_MAX),
            ("footer/text", footer, EMBED_FOOTER_MAX),
            ("author/name", author, EMBED_AUTHOR_MAX),
        ):
            if len(text) > limit:
                errors.append(f"{here}/{label}: {len(text)} characters (max {limit})")
        total += len(title) + len(desc) + len(footer) + len(author)
        fields = embed.get("fields") or []
        if len(fields) > EMBED_FIELDS_MAX:
            errors.append(f"{here}/fields: {len(fields)} fields (max {EMBED_FIELDS_MAX})")
        for j, fld in enumerate(fields):
            if not isinstance(fld, dict):
                continue
            name, value = _text(fld.get("name")), _text(fld.get("value"))
            if not name or not value:
                errors.append(f"{here}/fields/{j}: name and value are required and non-empty")
            if len(name) > EMBED_FIELD_NAME_MAX:
                errors.append(
                    f"{here}/fields/{j}/name: {len(name)} characters (max {EMBED_FIELD_NAME_MAX})"
                )
            if len(value) > EMBED_FIELD_VALUE_MAX:
                errors.append(
                    f"{here}/fields/{j}/value: {len(value)} characters "
                    f"(max {EMBED_FIELD_VALUE_MAX})"
                )
            total += len(name) + len(value)
    if total > EMBED_TOTAL_MAX:
        errors.append(f"{where}: {total} characters across embeds (max {EMBED_TOTAL_MAX})")
    return errors


def _count_components(components: Iterable[Any]) -> int:
    count = 0
    for comp in components:
        if isinstance(comp, dict):
            count += 1 + _count_components(comp.get("components") or [])
            if isinstance(comp.get("accessory"), dict):
                count += 1
    return count


def _check_button(button: dict[str, Any], where: str) -> list[str]:
    errors = []
    label = _text(button.get("label"))
    if len(label) > BUTTON_LABEL_MAX:
        errors.append(f"{where}/label: {len(label)} characters (max {BUTTON_LABEL_MAX})")
    style = button.get("style")
    if style == 5:
        if not button.get("url"):
            errors.append(f"{where}: a link button needs a url")
        if button.get("custom_id") is not None:
            errors.append(f"{where}: a link button cannot have a custom_id")
    elif style != 6:
        custom_id = button.get("custom_id")
        if not custom_id:
            errors.append(f"{where}: a non-link button needs a custom_id")
        elif len(custom_id) > CUSTOM_ID_MAX:
            errors.append(f"{where}/custom_id: {len(custom_id)} characters (max {CUSTOM_ID_MAX})")
        if button.get("url") is not None:
            errors.append(f"{where}: only link buttons (style 5) have a url")
    return errors


def _check_select(select: dict[str, Any], where: str) -> list[str]:
    errors = []
    custom_id = _text(select.get("custom_id"))
    if len(custom_id) > CUSTOM_ID_MAX:
        errors.append(f"{where}/custom_id: {len(custom_id)} characters (max {CUSTOM_ID_MAX})")
    options = select.get("options") or []
    if len(options) > SELECT_OPTIONS_MAX:
        errors.append(f"{where}/options: {len(options)} options (max {SELECT_OPTIONS_MAX})")
    for k, option in enumerate(options):
        for key in ("label", "value", "description"):
            text = _text((option or {}).get(key))
            if len(text) > 100:
                errors.append(f"{where}/options/{k}/{key}: {len(text)} characters (max 100)")
    return errors


def check_components(components: Any, flags: int = 0, where: str = "components") -> list[str]:
    """Action rows (≤5, ≤5 buttons or one select each), buttons and selects."""
    if not isinstance(components, list):
        return []
    errors = []
    if flags & FLAG_COMPONENTS_V2:
        total = _count_components(components)
        if total > COMPONENTS_V2_MAX:
            errors.append(f"{where}: {total} components (max {COMPONENTS_V2_MAX})")
    elif len(components) > ACTION_ROWS_MAX:
        errors.append(f"{where}: {len(components)} action rows (max {ACTION_ROWS_MAX})")

    def walk(items: list[Any], path: str) -> None:
        for i, comp in enumerate(items):
            if not isinstance(comp, dict):
                continue
            here = f"{path}/{i}"
            kind = comp.get("type")
            if kind == 1:
                children = comp.get("components") or []
                buttons = [c for c in children if isinstance(c, dict) and c.get("type") == 2]
                selects = [
                    c for c in children if isinstance(c, dict) and c.get("type") in {3, 5, 6, 7, 8}
                ]
                if len(buttons) > ROW_BUTTONS_MAX:
                    errors.append(
                        f"{here}: {len(buttons)} buttons in a row (max {ROW_BUTTONS_MAX})"
                    )
                if selects and (len(selects) > 1 or buttons):
                    errors.append(f"{here}: a select menu must be alone in its action row")
                walk(children, f"{here}/components")
            elif kind == 2:
                errors.extend(_check_button(comp, here))
            elif kind in {3, 5, 6, 7, 8}:
                errors.extend(_check_select(comp, here))
            else:
                walk(comp.get("components") or [], f"{here}/components")
                if isinstance(comp.get("accessory"), dict) and comp["accessory"].get("type") == 2:
                    errors.extend(_check_button(comp["accessory"], f"{here}/accessory"))

    walk(components, where)
    return errors


def check_allowed_mentions(payload: dict[str, Any], where: str = "") -> list[str]:
    """Project policy: every message states ``allowed_mentions`` with ``parse: []`` (never ping)."""
    prefix = f"{where}: " if where else ""
    mentions = payload.get("allowed_mentions")
    if not isinstance(mentions, dict):
        return [f"{prefix}allowed_mentions missing (the bot must send AllowedMentions.none())"]
    problems = []
    if mentions.get("parse") != []:
        problems.append(f"{prefix}allowed_mentions.parse is {mentions.get('parse')!r}, expected []")
    for key in ("users", "roles"):
        if mentions.get(key):
            problems.append(f"{prefix}allowed_mentions.{key} would ping {mentions[key]!r}")
    if mentions.get("replied_user"):
        problems.append(f"{prefix}allowed_mentions.replied_user would ping the replied user")
    return problems


def check_message(payload: Any, *, create: bool, where: str = "message") -> Report:
    """Content, embed and component limits; empty messages; the no-ping policy."""
    report = Report()
    if not isinstance(payload, dict):
        return report
    content = payload.get("content")
    if isinstance(content, str) and len(content) > CONTENT_MAX:
        report.rejections.append(f"{where}/content: {len(content)} characters (max {CONTENT_MAX})")
    report.rejections += check_embeds(payload.get("embeds"), f"{where}/embeds")
    flags = payload.get("flags") or 0
    flags = flags if isinstance(flags, int) else 0
    report.rejections += check_components(payload.get("components"), flags, f"{where}/components")
    if create and not any(
        payload.get(key)
        for key in ("content", "embeds", "components", "attachments", "sticker_ids", "poll")
    ):
        report.rejections.append(f"{where}: cannot send an empty message (code 50006)")
    if create or payload.get("content") is not None:
        report.policy += check_allowed_mentions(payload, where)
    return report


def check_choices(data: Any, where: str = "data") -> list[str]:
    """Autocomplete answers: ≤25 choices, each name 1-100 characters, string values ≤100."""
    if not isinstance(data, dict):
        return [f"{where}: autocomplete response needs data.choices"]
    choices = data.get("choices")
    if not isinstance(choices, list):
        return [f"{where}/choices: missing"]
    errors = []
    if len(choices) > CHOICES_MAX:
        errors.append(f"{where}/choices: {len(choices)} choices (max {CHOICES_MAX})")
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        name, value = choice.get("name"), choice.get("value")
        if not isinstance(name, str) or not 1 <= len(name) <= CHOICE_NAME_MAX:
            errors.append(f"{where}/choices/{i}/name: must be 1–{CHOICE_NAME_MAX} characters")
        if isinstance(value, str) and len(value) > CHOICE_VALUE_MAX:
            errors.append(
                f"{where}/choices/{i}/value: {len(value)} characters (max {CHOICE_VALUE_MAX})"
            )
    return errors


def check_callback(payload: Any) -> Report:
    """An interaction response: message (4), deferred (5, 6), update (7), choices (8), modal (9)."""
    report = Report()
    if not isinstance(payload, dict):
        return report
    kind, data = payload.get("type"), payload.get("data")
    if kind == 4:
        report.extend(check_message(data, create=True, where="data"))
    elif kind == 7:
        report.extend(check_message(data, create=False, where="data"))
    elif kind == 8:
        report.rejections += check_choices(data)
    elif kind == 9 and isinstance(data, dict):
        title, custom_id = _text(data.get("title")), _text(data.get("custom_id"))
        if not 1 <= len(title) <= MODAL_TITLE_MAX:
            report.rejections.append(f"data/title: must be 1–{MODAL_TITLE_MAX} characters")
        if not 1 <= len(custom_id) <= CUSTOM_ID_MAX:
            report.rejections.append(f"data/custom_id: must be 1–{CUSTOM_ID_MAX} characters")
        if not 1 <= len(data.get("components") or []) <= ACTION_ROWS_MAX:
            report.rejections.append(f"data/components: a modal has 1–{ACTION_ROWS_MAX} components")
    return report


def check_thread(payload: Any, *, from_message: bool) -> list[str]:
    """Thread names (1-100) and auto-archive durations (60, 1440, 4320, 10080 minutes)."""
    if not isinstance(payload, dict):
        return []
    errors = []
    name = payload.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= THREAD_NAME_MAX:
        errors.append(f"name: a thread name is 1–{THREAD_NAME_MAX} characters")
    duration = payload.get("auto_archive_duration")
    if duration is not None and duration not in AUTO_ARCHIVE_DURATIONS:
        errors.append(
            f"auto_archive_duration: {duration!r} not in {sorted(AUTO_ARCHIVE_DURATIONS)}"
        )
    if not from_message and payload.get("type") not in (None, 10, 11, 12):
        errors.append(f"type: {payload.get('type')!r} is not a thread type")
    return errors


def _command_chars(item: dict[str, Any]) -> int:
    total = len(_text(item.get("name"))) + len(_text(item.get("description")))
    for choice in item.get("choices") or []:
        total += len(_text(choice.get("name"))) + len(str(choice.get("value", "")))
    return total + sum(_command_chars(o) for o in item.get("options") or [] if isinstance(o, dict))


def _check_options(options: list[Any], where: str) -> list[str]:
    errors = []
    if len(options) > COMMAND_OPTIONS_MAX:
        errors.append(f"{where}: {len(options)} options (max {COMMAND_OPTIONS_MAX})")
    names = [o.get("name") for o in options if isinstance(o, dict)]
    if len(names) != len(set(names)):
        errors.append(f"{where}: duplicate option names {names}")
    seen_optional = False
    for i, option in enumerate(options):
        if not isinstance(option, dict):
            continue
        here = f"{where}/{i}({option.get('name')})"
        errors += _check_name_description(option, here, needs_description=True)
        if option.get("type") in (1, 2):
            errors += _check_options(option.get("options") or [], f"{here}/options")
            continue
        if option.get("required"):
            if seen_optional:
                errors.append(f"{here}: required options must come before optional ones")
        else:
            seen_optional = True
        choices = option.get("choices") or []
        if len(choices) > CHOICES_MAX:
            errors.append(f"{here}/choices: {len(choices)} choices (max {CHOICES_MAX})")
        if choices and option.get("autocomplete"):
            errors.append(f"{here}: autocomplete cannot be combined with choices")
    return errors


def _check_name_description(
    item: dict[str, Any], where: str, *, needs_description: bool
) -> list[str]:
    errors = []
    name = _text(item.get("name"))
    if not _COMMAND_NAME.match(name) or name != name.lower():
        errors.append(
            f"{where}/name: {name!r} must be 1–{COMMAND_NAME_MAX} lowercase letters, digits, - or _"
        )
    description = _text(item.get("description"))
    if needs_description and not 1 <= len(description) <= COMMAND_DESCRIPTION_MAX:
        errors.append(
            f"{where}/description: {len(description)} characters (1–{COMMAND_DESCRIPTION_MAX})"
        )
    return errors


def check_commands(payload: Any) -> list[str]:
    """Application command definitions as synced: names, descriptions, options, totals."""
    commands = payload if isinstance(payload, list) else [payload]
    errors = []
    per_type: dict[int, int] = {}
    for i, command in enumerate(commands):
        if not isinstance(command, dict):
            continue
        kind = command.get("type", 1) or 1
        per_type[kind] = per_type.get(kind, 0) + 1
        here = f"{i}({command.get('name')})"
        if kind == 1:
            errors += _check_name_description(command, here, needs_description=True)
            errors += _check_options(command.get("options") or [], f"{here}/options")
            if _command_chars(command) > COMMAND_TOTAL_CHARS_MAX:
                errors.append(f"{here}: more than {COMMAND_TOTAL_CHARS_MAX} characters in total")
    limits = {1: 100, 2: 5, 3: 5}
    for kind, count in per_type.items():
        if count > limits.get(kind, 100):
            errors.append(f"{count} commands of type {kind} (max {limits.get(kind, 100)})")
    names = [(c.get("type", 1), c.get("name")) for c in commands if isinstance(c, dict)]
    if len(names) != len(set(names)):
        errors.append("duplicate command names")
    return errors


_MESSAGE_CREATE = {"create_message", "execute_webhook"}
_MESSAGE_EDIT = {"update_message", "update_original_webhook_message", "update_webhook_message"}
_COMMANDS = {
    "bulk_set_application_commands",
    "bulk_set_guild_application_commands",
    "create_application_command",
    "create_guild_application_command",
    "update_application_command",
    "update_guild_application_command",
}


# The gateway (https://discord.com/developers/docs/events/gateway-events#identify and
# .../topics/opcodes-and-status-codes#gateway-gateway-close-event-codes): the spec above is REST
# only, so IDENTIFY is checked here against the documented payload.
CLOSE_DECODE_ERROR = 4002
CLOSE_INVALID_SHARD = 4010
CLOSE_SHARDING_REQUIRED = 4011
CLOSE_INVALID_INTENTS = 4013
LARGE_THRESHOLD_RANGE = (50, 250)
# "Each shard can only support a maximum of 2500 guilds" (topics/gateway#sharding).
MAX_GUILDS_PER_SHARD = 2500


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_identify(data: Any) -> list[tuple[int, str]]:
    """What is wrong with an IDENTIFY's ``d``, each with the close code Discord ends the
    connection with (4013 no intents, 4010 a bad ``shard``, 4002 a malformed field)."""
    if not isinstance(data, dict):
        return [(CLOSE_DECODE_ERROR, "IDENTIFY: d is not an object")]
    problems: list[tuple[int, str]] = []
    if not _is_int(data.get("intents")) or data["intents"] < 0:
        problems.append(
            (CLOSE_INVALID_INTENTS, "IDENTIFY without intents (required in gateway v10)")
        )
    properties = data.get("properties")
    if not isinstance(properties, dict) or not all(
        isinstance(properties.get(key), str) for key in ("os", "browser", "device")
    ):
        problems.append(
            (CLOSE_DECODE_ERROR, "IDENTIFY: properties must be an object with os, browser, device")
        )
    if "compress" in data and not isinstance(data["compress"], bool):
        problems.append((CLOSE_DECODE_ERROR, "IDENTIFY: compress must be a boolean"))
    if "large_threshold" in data:
        low, high = LARGE_THRESHOLD_RANGE
        value = data["large_threshold"]
        if not _is_int(value) or not low <= value <= high:
            problems.append(
                (CLOSE_DECODE_ERROR, f"IDENTIFY: large_threshold {value!r} is not {low} to {high}")
            )
    if (
        "presence" in data
        and data["presence"] is not None
        and not isinstance(data["presence"], dict)
    ):
        problems.append((CLOSE_DECODE_ERROR, "IDENTIFY: presence must be an object"))
    if "shard" in data:
        shard = data["shard"]
        valid = (
            isinstance(shard, list)
            and len(shard) == 2
            and all(_is_int(part) for part in shard)
            and shard[1] >= 1
            and 0 <= shard[0] < shard[1]
        )
        if not valid:
            problems.append(
                (
                    CLOSE_INVALID_SHARD,
                    f"IDENTIFY: shard {shard!r} is not [shard_id, num_shards] "
                    "with 0 <= shard_id < num_shards",
                )
            )
    return problems


class RequestValidator:
    """Spec + limits for one request; path is relative to ``/api/v10``."""

    def __init__(self, spec: OpenAPISpec) -> None:
        self.spec = spec

    @classmethod
    def load(cls, path: Path | str | None = None) -> RequestValidator:
        return cls(OpenAPISpec.load(path))

    def check(
        self, method: str, path: str, query: Mapping[str, str], body: Any
    ) -> tuple[Operation | None, Report]:
        report = Report()
        found = self.spec.match(method, path)
        if found is None:
            report.rejections.append(f"{method} {path}: not an endpoint in Discord's API spec")
            return None, report
        op, params = found
        prefix = f"{method} {op.template}"
        report.rejections += [
            f"{prefix}: {e}" for e in self.spec.validate_parameters(op, params, query)
        ]
        report.rejections += [f"{prefix}: {e}" for e in self.spec.validate_body(op, body)]
        limits = self.limits(op.operation_id, body)
        report.rejections += [f"{prefix}: {e}" for e in limits.rejections]
        report.policy += [f"{prefix}: {e}" for e in limits.policy]
        return op, report

    def limits(self, operation_id: str, body: Any) -> Report:
        report = Report()
        if operation_id in _MESSAGE_CREATE:
            report.extend(check_message(body, create=True))
        elif operation_id in _MESSAGE_EDIT:
            report.extend(check_message(body, create=False))
        elif operation_id == "create_interaction_response":
            report.extend(check_callback(body))
        elif operation_id == "create_thread_from_message":
            report.rejections += check_thread(body, from_message=True)
        elif operation_id == "create_thread":
            report.rejections += check_thread(body, from_message=False)
            if isinstance(body, dict) and isinstance(body.get("message"), dict):
                report.extend(check_message(body["message"], create=True, where="message"))
        elif operation_id in _COMMANDS:
            report.rejections += check_commands(body)
        return report
