"""Text for Telegram's HTML parse mode: every dynamic string escaped, the model's Markdown converted, and
messages split at Telegram's 4,096 characters.

Telegram's HTML accepts a few tags (b, i, u, s, code, pre, a, blockquote, …) and the entities &lt; &gt; &amp;
&quot;; anything else (an unknown tag, a bare `<` or `&`, an unclosed tag) fails the whole message with
"can't parse entities". So nothing the model, a trader or a stored alert wrote is ever sent as markup: it is
escaped first, and only the Markdown this module recognises becomes tags, which it always closes on the same
line (a code block: in the same chunk).
"""

from __future__ import annotations

import html
import re

LIMIT = 4096  # Telegram's limit for one message's text

_FENCE = re.compile(r"^\s*```")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*)$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(
    r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"
)
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")


def escape(value: object) -> str:
    """Any dynamic value as text of Telegram HTML (`<`, `>`, `&` and quotes escaped)."""
    return html.escape(str(value), quote=True)


def _inline(line: str) -> str:
    """One line of Markdown as Telegram HTML: code spans and links kept apart, the rest escaped, then
    bold / italic / strike. Every tag opened here is closed on the line."""
    spans: list[str] = []

    def keep(text: str) -> str:
        spans.append(text)
        return f"\x00{len(spans) - 1}\x00"

    line = line.replace("\x00", "")
    line = _CODE.sub(lambda m: keep(f"<code>{escape(m.group(1))}</code>"), line)
    line = _LINK.sub(lambda m: keep(f'<a href="{escape(m.group(2))}">{escape(m.group(1))}</a>'), line)
    out = escape(line)
    out = _BOLD.sub(lambda m: f"<b>{m.group(1) or m.group(2)}</b>", out)
    out = _ITALIC.sub(lambda m: f"<i>{m.group(1) or m.group(2)}</i>", out)
    out = _STRIKE.sub(lambda m: f"<s>{m.group(1)}</s>", out)
    return re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], out)


def _blocks(markdown: str) -> list[tuple[str, str]]:
    """The text as ("line", html) and ("pre", raw code) blocks."""
    blocks: list[tuple[str, str]] = []
    code: list[str] | None = None
    for raw in markdown.replace("\r\n", "\n").split("\n"):
        if _FENCE.match(raw):
            if code is None:
                code = []
            else:
                blocks.append(("pre", "\n".join(code)))
                code = None
            continue
        if code is not None:
            code.append(raw)
            continue
        heading, bullet = _HEADING.match(raw), _BULLET.match(raw)
        if heading:
            blocks.append(("line", f"<b>{_inline(heading.group(1))}</b>"))
        elif bullet:
            blocks.append(("line", f"{bullet.group(1)}• {_inline(bullet.group(2))}"))
        else:
            blocks.append(("line", _inline(raw)))
    if code is not None:  # an unclosed fence: the rest is code
        blocks.append(("pre", "\n".join(code)))
    return blocks


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _fit(kind: str, body: str, limit: int) -> list[str]:
    """A block as one or more HTML parts of at most `limit` characters each."""
    if kind == "pre":
        rendered = f"<pre>{escape(body)}</pre>"
        if len(rendered) <= limit:
            return [rendered]
        # Whole lines per part where they fit; 11 is the length of <pre></pre>, and each escaped character
        # is at most 6 long (&quot;), so a line too long for one part is cut at (limit - 11) // 6.
        parts, current = [], ""
        for line in body.split("\n"):
            for piece in _pieces(line, (limit - 11) // 6) if len(escape(line)) > limit - 11 else [line]:
                joined = f"{current}\n{piece}" if current else piece
                if len(escape(joined)) + 11 > limit and current:
                    parts.append(current)
                    joined = piece
                current = joined
        parts.append(current)
        return [f"<pre>{escape(p)}</pre>" for p in parts if p.strip()]
    if len(body) <= limit:
        return [body]
    plain = html.unescape(re.sub(r"<[^>]+>", "", body))  # too long for one message: sent as plain text
    return [escape(p) for p in _pieces(plain, limit // 6)]


def pack(parts: list[str], limit: int = LIMIT) -> list[str]:
    """HTML lines (each balanced) joined into messages of at most `limit` characters."""
    messages: list[str] = []
    current = ""
    for part in parts:
        for number, piece in enumerate(_fit("line", part, limit)):
            # The pieces of one line too long for a message follow each other with no line break.
            glue = "\n" if number == 0 else ""
            joined = f"{current}{glue}{piece}" if current else piece
            if len(joined) <= limit:
                current = joined
                continue
            if current:
                messages.append(current)
            current = piece
    if current.strip():
        messages.append(current)
    return messages or ["…"]


def markdown_to_html(markdown: str, limit: int = LIMIT) -> list[str]:
    """The model's Markdown as Telegram HTML messages, each at most `limit` characters."""
    parts: list[str] = []
    for kind, body in _blocks(markdown):  # a line too long is cut by pack, a code block here
        parts.extend(_fit(kind, body, limit) if kind == "pre" else [body])
    return pack(parts, limit)
