"""A strict subset of Go's text/template, enough to execute Ollama's chat templates on the data Ollama passes.

Written for the prompt tests, the prompt bench and the Ollama double (not product code), so a template's
*text* (the one `copilot model install` sends, or the stock one Ollama ships) is executed, not re-described.
Implemented from Go's text/template documentation: actions `{{ }}` with the `{{- ` / ` -}}` trim markers and
`{{/* */}}` comments; `if` / `else if` / `else` / `end`; `range` (with `$i, $x :=` and `else`); variable
declarations `$x := …`; `$`; field chains on `.`, `$x` and `$`; string, number and boolean literals;
parenthesised pipelines and `|` pipes; the builtins and, or, not, eq, ne, lt, le, gt, ge, len, slice, index,
print; and Ollama's own `json`. Anything else (with, define, template, block, break, continue, printf…) is a
TemplateError, never a silent guess. Field access on a missing field is an error, as on a Go struct.

`execute(text, data)` renders; `parse(text)` checks the syntax (what Ollama's create does with a template).
Values: a `Struct` has named fields and, when it was given `text`, prints as that text (Go's String() method:
Ollama's tools and tool-call arguments print as JSON); str, int, bool, None and lists are used as Go's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any


class TemplateError(ValueError):
    """The template does not parse, or it failed while executing (the message says where, like Go's)."""


class Struct:
    """A Go struct value: named fields; printed as `text` when given (its String() method)."""

    def __init__(self, text: str | None = None, **fields: Any) -> None:
        self.text, self.fields = text, fields

    def __str__(self) -> str:
        if self.text is None:
            raise TemplateError("printing a struct without a String method is not supported")
        return self.text


@dataclass
class _Node:
    kind: str  # text | action | if | range
    line: int
    text: str = ""
    pipe: list[Any] = field(default_factory=list)  # commands; a command is a list of operands
    decl: list[str] = field(default_factory=list)  # variables declared by the action or the range
    branches: list[tuple[list[Any], list[_Node]]] = field(default_factory=list)  # if / else if: (pipe, body)
    body: list[_Node] = field(default_factory=list)  # range body
    otherwise: list[_Node] = field(default_factory=list)  # the else list


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+)|(?P<decl>:=)|(?P<punct>[()|,])'
    r"|(?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|(?P<field>(?:\.[A-Za-z0-9_]+)+|\.)"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*))"
)
_UNSUPPORTED = {"with", "define", "template", "block", "break", "continue", "nil"}
_FUNCS = {"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "slice", "index", "print", "json"}


def _tokens(source: str, line: int) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(source.rstrip()):
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"template: :{line}: unexpected {source[pos:].strip()[:20]!r} in command")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _parse_pipe(tokens: list[tuple[str, str]], line: int) -> list[Any]:
    """A pipeline: commands separated by `|`; an operand is a token, or ("pipe", commands) for `( … )`."""
    commands: list[list[Any]] = [[]]
    stack: list[list[list[Any]]] = []
    for kind, value in tokens:
        if (kind, value) == ("punct", "("):
            stack.append(commands)
            commands = [[]]
        elif (kind, value) == ("punct", ")"):
            if not stack:
                raise TemplateError(f"template: :{line}: unexpected right paren")
            inner, commands = commands, stack.pop()
            commands[-1].append(("pipe", inner))
        elif (kind, value) == ("punct", "|"):
            commands.append([])
        elif kind in ("punct", "decl"):
            raise TemplateError(f"template: :{line}: unexpected {value!r} in operand")
        elif kind == "ident" and value not in _FUNCS | {"true", "false"}:
            word = "unsupported" if value in _UNSUPPORTED else "not defined"
            raise TemplateError(f'template: :{line}: function "{value}" {word}')
        else:
            commands[-1].append((kind, value))
    if stack:
        raise TemplateError(f"template: :{line}: unclosed left paren")
    if any(not c for c in commands):
        raise TemplateError(f"template: :{line}: missing value for command")
    return commands


def _declared(tokens: list[tuple[str, str]], line: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Split `$a, $b := pipeline` into the variable names and the pipeline's tokens."""
    if ("decl", ":=") not in tokens:
        return [], tokens
    at = tokens.index(("decl", ":="))
    names = [v for k, v in tokens[:at] if k == "var"]
    if not names or len(names) > 2 or any(k not in ("var", "punct") for k, _ in tokens[:at]):
        raise TemplateError(f"template: :{line}: bad variable declaration")
    return names, tokens[at + 1 :]


def parse(text: str) -> list[_Node]:
    """The template's tree; TemplateError on syntax Go rejects (or that this subset does not support)."""
    root: list[_Node] = []
    open_blocks: list[tuple[_Node, list[_Node]]] = []  # (if/range node, the list being filled)
    current, pos, trim_next = root, 0, False
    for match in _ACTION.finditer(text):
        chunk = text[pos : match.start()]
        chunk = chunk.lstrip(" \t\r\n") if trim_next else chunk
        chunk = chunk.rstrip(" \t\r\n") if match.group(1) else chunk
        line = text.count("\n", 0, match.start()) + 1
        if chunk:
            current.append(_Node("text", line, text=chunk))
        pos, trim_next = match.end(), bool(match.group(3))
        body = match.group(2).strip()
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError(f"template: :{line}: unclosed comment")
            continue
        tokens = _tokens(body, line)
        if not tokens:
            raise TemplateError(f"template: :{line}: missing value for command")
        head = tokens[0][1] if tokens[0][0] == "ident" else ""
        if head == "if":
            node = _Node("if", line, branches=[(_parse_pipe(tokens[1:], line), [])])
            current.append(node)
            open_blocks.append((node, node.branches[0][1]))
        elif head == "range":
            names, rest = _declared(tokens[1:], line)
            node = _Node("range", line, pipe=_parse_pipe(rest, line), decl=names)
            current.append(node)
            open_blocks.append((node, node.body))
        elif head == "else":
            if not open_blocks or open_blocks[-1][1] is open_blocks[-1][0].otherwise:
                raise TemplateError(f"template: :{line}: unexpected {{{{else}}}}")
            node = open_blocks[-1][0]
            if tokens[1:2] == [("ident", "if")] and node.kind == "if":
                node.branches.append((_parse_pipe(tokens[2:], line), []))
                open_blocks[-1] = (node, node.branches[-1][1])
            elif len(tokens) == 1:
                open_blocks[-1] = (node, node.otherwise)
            else:
                raise TemplateError(f"template: :{line}: unexpected {body!r}")
        elif head == "end":
            if not open_blocks or len(tokens) != 1:
                raise TemplateError(f"template: :{line}: unexpected {{{{end}}}}")
            open_blocks.pop()
        elif head in _UNSUPPORTED:
            raise TemplateError(f"template: :{line}: {{{{{head}}}}} is not supported by this subset")
        else:
            names, rest = _declared(tokens, line)
            current.append(_Node("action", line, pipe=_parse_pipe(rest, line), decl=names))
            if len(names) > 1:
                raise TemplateError(f"template: :{line}: too many declarations in command")
        current = open_blocks[-1][1] if open_blocks else root
    if open_blocks:
        raise TemplateError(f"template: :{open_blocks[-1][0].line}: unexpected EOF")
    tail = text[pos:]
    tail = tail.lstrip(" \t\r\n") if trim_next else tail
    if "{{" in tail:
        raise TemplateError("template: unclosed action")
    if tail:
        root.append(_Node("text", text.count("\n") + 1, text=tail))
    return root


def truth(value: Any) -> bool:
    """Go's truth: false, 0, "", nil and empty collections are false; a struct is true."""
    if isinstance(value, Struct):
        return True
    return bool(value)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<no value>"
    if isinstance(value, list | dict):
        raise TemplateError("printing a list or map is not supported by this subset")
    return str(value)


def _field(value: Any, names: list[str], line: int) -> Any:
    for name in names:
        if isinstance(value, Struct) and name in value.fields:
            value = value.fields[name]
        elif isinstance(value, dict):
            value = value.get(name)  # a map: missingkey=zero
        else:
            raise TemplateError(f"template: :{line}: can't evaluate field {name} in {type(value).__name__}")
    return value


@dataclass
class _Run:
    root: Any
    line: int = 0
    scopes: list[dict[str, Any]] = field(default_factory=list)

    def var(self, name: str) -> Any:
        head, *rest = name.split(".")
        if head == "$":
            return _field(self.root, rest, self.line)
        for scope in reversed(self.scopes):
            if head in scope:
                return _field(scope[head], rest, self.line)
        raise TemplateError(f'template: :{self.line}: undefined variable "{head}"')

    def operand(self, op: tuple[str, Any], dot: Any) -> Any:
        kind, value = op
        if kind == "pipe":
            return self.pipe(value, dot)
        if kind == "str":
            return json.loads(value)
        if kind == "raw":
            return value[1:-1]
        if kind == "num":
            return int(value)
        if kind == "ident":
            return value == "true"
        if kind == "var":
            return self.var(value)
        return dot if value == "." else _field(dot, value.split(".")[1:], self.line)

    def call(self, name: str, args: list[Callable[[], Any]]) -> Any:
        if name in ("and", "or"):  # short-circuit, returning the deciding argument (Go 1.18)
            result = None
            for arg in args:
                result = arg()
                if truth(result) != (name == "and"):
                    return result
            return result
        values = [a() for a in args]
        builtins: dict[str, Callable[..., Any]] = {
            "not": lambda v: not truth(v),
            "eq": lambda a, *b: any(a == x for x in b),
            "ne": lambda a, b: a != b,
            "lt": lambda a, b: a < b,
            "le": lambda a, b: a <= b,
            "gt": lambda a, b: a > b,
            "ge": lambda a, b: a >= b,
            "len": len,
            "slice": lambda v, *i: v[i[0] if i else 0 : i[1] if len(i) > 1 else None],
            "index": lambda v, *keys: _index(v, keys),
            "print": lambda *v: " ".join(_show(x) for x in v),
            "json": lambda v: str(v) if isinstance(v, Struct) else json.dumps(v, ensure_ascii=False),
        }
        try:
            return builtins[name](*values)
        except TypeError as exc:
            raise TemplateError(f"template: :{self.line}: error calling {name}: {exc}") from None

    def pipe(self, commands: list[list[Any]], dot: Any) -> Any:
        result, piped = None, False
        for command in commands:
            head, *rest = command
            tail: list[Callable[[], Any]] = [partial(self.operand, op, dot) for op in rest]
            if piped:  # the previous command's value is the last argument
                tail.append(partial(lambda value: value, result))
            if head[0] == "ident" and head[1] in _FUNCS:
                result = self.call(head[1], tail)
            elif tail:
                raise TemplateError(f"template: :{self.line}: can't give argument to non-function")
            else:
                result = self.operand(head, dot)
            piped = True
        return result

    def run(self, nodes: list[_Node], dot: Any) -> str:
        out: list[str] = []
        for node in nodes:
            self.line = node.line
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "action":
                value = self.pipe(node.pipe, dot)
                if node.decl:
                    self.scopes[-1][node.decl[0]] = value
                else:
                    out.append(_show(value))
            elif node.kind == "if":
                chosen = next((b for p, b in node.branches if truth(self.pipe(p, dot))), node.otherwise)
                out.append(self.block(chosen, dot, {}))
            else:
                items = self.pipe(node.pipe, dot) or []
                if not isinstance(items, list):
                    raise TemplateError(f"template: :{node.line}: range can't iterate over {items!r}")
                for i, item in enumerate(items):
                    values = [i, item] if len(node.decl) == 2 else [item]
                    names = dict(zip(node.decl, values, strict=True)) if node.decl else {}
                    out.append(self.block(node.body, item, names))
                if not items:
                    out.append(self.block(node.otherwise, dot, {}))
        return "".join(out)

    def block(self, nodes: list[_Node], dot: Any, names: dict[str, Any]) -> str:
        self.scopes.append(dict(names))
        try:
            return self.run(nodes, dot)
        finally:
            self.scopes.pop()


def _index(value: Any, keys: tuple[Any, ...]) -> Any:
    for key in keys:
        value = value[key]
    return value


def execute(text: str, data: Any) -> str:
    """Render `text` with `data` as dot (and `$`)."""
    return _Run(root=data).block(parse(text), data, {})
