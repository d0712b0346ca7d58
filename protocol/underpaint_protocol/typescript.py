"""Generates the Figma plugin's protocol types from ``protocol/schema.json``.

Run ``python -m underpaint_protocol.typescript > plugins/figma/src/shared/protocol.gen.ts`` after
regenerating the schema. The output holds an interface per message and shared part, the client and
server discriminated unions, the enums as ``const`` arrays with their types, and the constants of
``x-underpaint`` (default address, formats, states, reconnect delays, error codes with their user
text). It embeds the SHA-256 of the schema file, so the plugin's tests fail when the schema changes
without this file being regenerated; ``tests/protocol/test_spec.py`` compares the whole output.
Only JSON Schema as pydantic writes it for ``messages`` is handled; anything else is an error, not a
silent ``any``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schema.json"
OUTPUT = "plugins/figma/src/shared/protocol.gen.ts"

UNIONS = ("ClientMessage", "ServerMessage")
ENUMS = {"mode": ("MODES", "Mode"), "prefill": ("PREFILL_METHODS", "PrefillMethod")}
"""Inline enums of the schema that get a named const array: property -> (const name, type name)."""
FACT_ENUMS = (
    ("image_formats", "IMAGE_FORMATS", "ImageFormat", "Formats an attachment may travel in."),
    ("result_formats", "RESULT_FORMATS", "ResultFormat", "Formats a client may ask its results in."),
    ("job_states", "JOB_STATES", "JobState", "A job's state as the daemon reports it."),
    ("terminal_states", "TERMINAL_STATES", "TerminalState", "States a job never leaves."),
    ("generate_modes", "GENERATE_MODES", "GenerateMode", "The modes that make an image: what Generate runs."),
)
"""Lists of ``x-underpaint`` exported as const arrays: key, const name, type name, doc."""


class UnsupportedSchema(ValueError):
    """The schema uses a construct this generator does not translate."""


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _literal(value: Any) -> str:
    return json.dumps(value)


class Generator:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.defs: dict[str, Any] = schema["$defs"]
        self.enums: dict[tuple[str, ...], str] = {}
        """Enum values -> the TypeScript type named for them (formats, states, modes)."""

    def type_of(self, node: dict[str, Any], prop: str = "") -> str:
        """The TypeScript type of one schema node."""
        if "$ref" in node:
            return _ref_name(node["$ref"])
        if "const" in node:
            return _literal(node["const"])
        if "enum" in node:
            named = self.enums.get(tuple(node["enum"]))
            return named or " | ".join(_literal(value) for value in node["enum"])
        for key in ("anyOf", "oneOf"):
            if key in node:
                return " | ".join(self.type_of(option, prop) for option in node[key])
        kind = node.get("type")
        if kind in ("integer", "number"):
            return "number"
        if kind in ("string", "boolean", "null"):
            return str(kind)
        if kind == "array":
            item = self.type_of(node["items"], prop)
            return f"({item})[]" if "|" in item else f"{item}[]"
        if kind == "object" and "properties" not in node:
            extra = node.get("additionalProperties", True)
            return "Record<string, unknown>" if extra is True else f"Record<string, {self.type_of(extra, prop)}>"
        raise UnsupportedSchema(f"cannot translate {prop or 'a node'}: {json.dumps(node)[:200]}")

    @staticmethod
    def constraints(node: dict[str, Any]) -> str:
        """Range, length and pattern limits of a node (or of its non-null option), for the doc comment."""
        options = [option for option in node.get("anyOf", [node]) if option.get("type") != "null"]
        if len(options) != 1:
            return ""
        option = options[0]
        parts = []
        if "minimum" in option or "maximum" in option:
            parts.append(f"{option.get('minimum', '')}..{option.get('maximum', '')}")
        if "minLength" in option or "maxLength" in option:
            parts.append(f"length {option.get('minLength', 0)}..{option.get('maxLength', '')}")
        if "pattern" in option:
            parts.append(f"pattern {option['pattern']}")
        return ", ".join(parts)

    def interface(self, name: str, node: dict[str, Any]) -> list[str]:
        if node.get("type") != "object" or "properties" not in node:
            raise UnsupportedSchema(f"$defs/{name} is not an object with properties")
        lines = _doc(node.get("description", ""), "")
        lines.append(f"export interface {name} {{")
        required = set(node.get("required", []))
        for prop, child in node["properties"].items():
            doc = " ".join(part for part in (child.get("description", ""), self.constraints(child)) if part)
            if "default" in child and child["default"] is not None and "const" not in child:
                doc = f"{doc} (default {_literal(child['default'])})".strip()
            lines += _doc(doc, "  ")
            # a const (the `type` tag) is always on the wire, even where the schema gives it a default
            optional = "" if prop in required or "const" in child else "?"
            lines.append(f"  {prop}{optional}: {self.type_of(child, f'{name}.{prop}')};")
        lines.append("}")
        return lines

    def union(self, name: str) -> list[str]:
        node = self.defs[name]
        members = [_ref_name(option["$ref"]) for option in node["oneOf"]]
        tag = node["discriminator"]["propertyName"]
        mapping = {key: _ref_name(ref) for key, ref in node["discriminator"]["mapping"].items()}
        lines = [
            f"/** Every {'client -> daemon' if name == 'ClientMessage' else 'daemon -> client'} message, "
            f"told apart by `{tag}`. */",
            f"export type {name} = {' | '.join(members)};",
            f"export type {name}Type = {name}[{_literal(tag)}];",
            f"export const {_constant(name)}_TYPES = [{', '.join(_literal(key) for key in mapping)}] as const;",
            f"/** The {name} whose `{tag}` is T. */",
            f"export type {name}Of<T extends {name}Type> = Extract<{name}, {{ {tag}: T }}>;",
        ]
        return lines

    def enum_block(self, const: str, type_name: str, values: list[Any], doc: str) -> list[str]:
        self.enums.setdefault(tuple(values), type_name)
        return [
            *_doc(doc, ""),
            f"export const {const} = [{', '.join(_literal(v) for v in values)}] as const;",
            f"export type {type_name} = (typeof {const})[number];",
        ]

    def render(self, digest: str) -> str:
        facts = self.schema["x-underpaint"]
        out = [
            f"// Generated by `python -m underpaint_protocol.typescript > {OUTPUT}`",
            "// from protocol/schema.json. Do not edit: change the Python definitions and regenerate both.",
            "",
            "/** SHA-256 of the protocol/schema.json this file was generated from (checked by the tests). */",
            f"export const SCHEMA_SHA256 = {_literal(digest)};",
            "",
            f"export const PROTOCOL_VERSION = {facts['protocol_version']};",
            f"export const DEFAULT_HOST = {_literal(facts['default_host'])};",
            f"export const DEFAULT_PORT = {facts['default_port']};",
            f"export const DEFAULT_URL = {_literal(facts['default_url'])};",
            "/** Seconds before each reconnect attempt; the last repeats. */",
            f"export const RECONNECT_DELAYS = [{', '.join(map(str, facts['reconnect_delays']))}] as const;",
            "/** The longest JSON header a binary frame may carry. */",
            f"export const MAX_FRAME_HEADER_BYTES = {facts['max_frame_header_bytes']};",
            "",
        ]
        for key, const, type_name, doc in FACT_ENUMS[:2]:
            out += self.enum_block(const, type_name, facts[key], doc)
        out += [
            "/** Uncompressed formats and their bytes per pixel. */",
            "export const RAW_FORMATS = { "
            + ", ".join(f"{name}: {size}" for name, size in facts["raw_formats"].items())
            + " } as const satisfies Record<string, number>;",
            "export type RawFormat = keyof typeof RAW_FORMATS;",
        ]
        for key, const, type_name, doc in FACT_ENUMS[2:]:
            out += self.enum_block(const, type_name, facts[key], doc)
        for prop, (const, type_name) in ENUMS.items():
            out += self.enum_block(const, type_name, self._inline_enum(prop), f"The values of `{prop}`.")
        out += ["", "/** Every error code: what it means, and the sentence shown to the user. */"]
        out.append("export const ERROR_CODES = {")
        for code, entry in facts["error_codes"].items():
            meaning, user_text = _literal(entry["meaning"]), _literal(entry["user_text"])
            out.append(f"  {code}: {{ meaning: {meaning}, userText: {user_text} }},")
        out += ["} as const;", "export type ErrorCode = keyof typeof ERROR_CODES;", ""]
        for name, node in self.defs.items():
            if name not in UNIONS:
                out += [*self.interface(name, node), ""]
        for name in UNIONS:
            out += [*self.union(name), ""]
        return "\n".join(out).rstrip("\n") + "\n"

    def _inline_enum(self, prop: str) -> list[Any]:
        found = {
            tuple(child["enum"])
            for node in self.defs.values()
            for name, child in node.get("properties", {}).items()
            if name == prop and "enum" in child
        }
        if len(found) != 1:
            raise UnsupportedSchema(f"expected one enum for `{prop}`, found {sorted(found)}")
        return list(found.pop())


def _constant(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _doc(text: str, indent: str) -> list[str]:
    text = " ".join(text.split()).replace("*/", "* /")
    return [f"{indent}/** {text} */"] if text else []


def render_typescript(schema_text: str) -> str:
    """The TypeScript module for the given schema.json text."""
    digest = hashlib.sha256(schema_text.encode("utf-8")).hexdigest()
    return Generator(json.loads(schema_text)).render(digest)


if __name__ == "__main__":
    print(render_typescript(SCHEMA_PATH.read_text(encoding="utf-8")), end="")
