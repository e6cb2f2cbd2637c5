"""Templates: ``"redis://:${aws:prod/redis#password}@redis:6379/0"``.

A template is a tuple of ``Literal`` and ``Ref`` atoms. The parser is pure:
text in, atoms or ``TemplateError`` records out (errors are data, with their
column), so the manifest loader can report every bad value at once.

Syntax (SPEC §3):

- ``${PROVIDER:PATH}`` is a reference. PROVIDER is a name of letters, digits,
  ``_`` and ``-``. PATH runs to the matching ``}`` and may itself hold ``:``
  (an AWS ARN) but not ``}``.
- ``?version=V`` after the path pins a version; ``#KEY`` (or ``#a.b``) after
  that selects a field of a structured secret.
- ``$$`` is a literal ``$``; any other ``$`` not followed by ``{`` is literal.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

from .providers.base import SecretId


class Literal(NamedTuple):
    text: str


class Ref(NamedTuple):
    """One reference; ``secret_id`` is the dedupe key, so ``#url`` and
    ``#password`` of one secret cost one fetch."""

    provider: str
    path: str
    version: Optional[str] = None
    field: Optional[str] = None

    @property
    def secret_id(self) -> SecretId:
        return SecretId(self.provider, self.path, self.version)

    @property
    def text(self) -> str:
        out = f"${{{self.provider}:{self.path}"
        if self.version is not None:
            out += f"?version={self.version}"
        if self.field is not None:
            out += f"#{self.field}"
        return out + "}"

    def __str__(self) -> str:
        return self.text


Atom = Union[Literal, Ref]
Template = Tuple[Atom, ...]


class TemplateError(NamedTuple):
    column: int        # 1-based, in the template text
    message: str

    def __str__(self) -> str:
        return f"column {self.column}: {self.message}"


def _is_name(text: str) -> bool:
    return bool(text) and all(c.isalnum() and c.isascii() or c in "_-" for c in text)


def parse_ref(body: str, column: int = 1) -> Union[Ref, TemplateError]:
    """Parse what stands between ``${`` and ``}``."""
    provider, colon, rest = body.partition(":")
    if not colon:
        return TemplateError(column, f"reference '${{{body}}}' has no ':' between provider and path")
    if not provider:
        return TemplateError(column, "reference has an empty provider name")
    if not _is_name(provider):
        return TemplateError(column, f"provider name {provider!r} may only hold letters, digits, '_' and '-'")
    field = None
    if "#" in rest:
        rest, _, field = rest.partition("#")
        if not field or any(not part for part in field.split(".")):
            return TemplateError(column, f"reference '${{{body}}}' has an empty field after '#'")
    version = None
    if "?" in rest:
        rest, _, query = rest.partition("?")
        key, eq, version = query.partition("=")
        if key != "version" or not eq:
            return TemplateError(column, f"reference '${{{body}}}': only '?version=V' is understood, not {query!r}")
        if not version:
            return TemplateError(column, f"reference '${{{body}}}' has an empty version")
    if not rest.strip():
        return TemplateError(column, f"reference '${{{body}}}' has an empty path")
    return Ref(provider, rest, version, field)


def parse(text: str) -> Union[Template, TemplateError]:
    """Parse a template. Adjacent literal text is merged into one atom."""
    atoms: list[Atom] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$":
            j = text.find("$", i)
            j = n if j < 0 else j
            buf.append(text[i:j])
            i = j
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt == "$":
            buf.append("$")
            i += 2
        elif nxt == "{":
            end = text.find("}", i + 2)
            if end < 0:
                return TemplateError(i + 1, "'${' is not closed by '}'")
            body = text[i + 2:end]
            if "${" in body:
                return TemplateError(i + 1, "references cannot be nested")
            ref = parse_ref(body, i + 1)
            if isinstance(ref, TemplateError):
                return ref
            if buf:
                atoms.append(Literal("".join(buf)))
                buf = []
            atoms.append(ref)
            i = end + 1
        else:
            buf.append("$")
            i += 1
    if buf:
        atoms.append(Literal("".join(buf)))
    return tuple(atoms)


def refs(template: Template) -> Tuple[Ref, ...]:
    return tuple(a for a in template if isinstance(a, Ref))


def is_literal(template: Template) -> bool:
    return not refs(template)


def single_ref(template: Template) -> Optional[Ref]:
    """The reference if the template is exactly one reference and nothing else."""
    if len(template) == 1 and isinstance(template[0], Ref):
        return template[0]
    return None


def literal_text(template: Template) -> str:
    return "".join(a.text for a in template if isinstance(a, Literal))
