"""Render an Ollama /api/chat request the way Ollama turns it into a prompt, for a few chat templates.

Written for the prompt tests and the prompt bench (not product code). It reproduces, in Python, the rules read
from Ollama's public repository (template/template.go, server/prompt.go) and the chat templates Ollama ships
with the library models llama3.1, llama3 and qwen2.5, and the copilot's derived llama3.1 template:

- collation: every system message's content is joined (blank line between) into `.System`, the top system
  block; consecutive messages of the same role are merged into one (contents joined by a blank line; only the
  first one's tool calls survive). System messages stay in the message list, where these templates skip them.
- llama3.1 (Messages template): system block = `.System` plus, with tools, a fixed tool-calling preamble; a
  message is "last" only if nothing follows it. The tool list is written inside the last message, and only if
  that message is a user message; the answer header `<|start_header_id|>assistant<|end_header_id|>` follows
  a last user or tool (`ipython`) message only.
- llama3.1-copilot (`copilot model install`, graph/model/ollama_model.py): llama3.1, the tool list once at the
  end of the system block, and every user turn plain, so each prompt starts with the whole previous one.
- llama3 (legacy `.System`/`.Prompt`/`.Response` template, no tools; JSON mode): messages are folded into
  (system, prompt, response) triples, each rendered with the template; tool messages are dropped; the final
  triple is rendered up to `.Response`, so the prompt ends with the assistant header.
- qwen2.5 (Messages template): `.System` and the tool list in the top system block; tool results as user
  turns in `<tool_response>`; the answer header `<|im_start|>assistant` after a last non-assistant message.

Input is exactly what goes over the wire: the request's `messages` (role, content, tool_calls) and `tools`.
Tool JSON is compact like Go's json.Marshal (byte-exact escaping of <, >, & is not reproduced).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bench.go_template import Struct, execute

LLAMA_HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n"
QWEN_HEADER = "<|im_start|>assistant\n"
TEMPLATES = ("llama3.1", "llama3", "qwen2.5", "llama3.1-copilot")

# Ollama's `llama3.1` template, as its /api/show returns it (the Go text that `_llama31` re-implements).
LLAMA31_TEMPLATE = """\
{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

Cutting Knowledge Date: December 2023

When you receive a tool call response, use the output to format an answer to the orginal user question.

You are a helpful assistant with tool calling capabilities.
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>
{{- if and $.Tools $last }}

Given the following functions, please respond with a JSON for a function call with its proper arguments \
that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. \
Do not use variables.

{{ range $.Tools }}
{{- . }}
{{ end }}
Question: {{ .Content }}<|eot_id|>
{{- else }}

{{ .Content }}<|eot_id|>
{{- end }}{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if .ToolCalls }}
{{ range .ToolCalls }}
{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- end }}"""


@dataclass
class Message:
    role: str
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def collate(messages: list[dict[str, Any]]) -> tuple[str, list[Message]]:
    """Ollama's collate(): all system contents joined as `.System`; consecutive same-role messages merged."""
    system: list[str] = []
    out: list[Message] = []
    for raw in messages:
        role, content = str(raw.get("role", "")), str(raw.get("content") or "")
        if role == "system":
            system.append(content)
        if out and out[-1].role == role:
            out[-1].content += "\n\n" + content
        else:
            out.append(Message(role, content, list(raw.get("tool_calls") or [])))
    return "\n\n".join(system), out


def _call(call: dict[str, Any]) -> tuple[str, str]:
    function = call.get("function", call)
    return str(function.get("name")), _json(function.get("arguments") or {})


def _llama_call(name: str, arguments: str) -> str:
    return '\n{"name": "' + name + '", "parameters": ' + arguments + "}"


def _qwen_call(name: str, arguments: str) -> str:
    return '{"name": "' + name + '", "arguments": ' + arguments + "}\n"


def _system_block(
    system: str, tools: list[dict[str, Any]], start: str, sep: str, tools_text: str, end: str
) -> str:
    """The top system block of a Messages template: `.System` after `sep`, then with tools `tools_text`."""
    if not (system or tools):
        return ""
    return start + (sep + system if system else "") + (tools_text if tools else "") + end


def _llama31(
    system: str, messages: list[Message], tools: list[dict[str, Any]], in_system: bool = False
) -> str:
    """llama3.1; `in_system`: the derived template (graph/model/ollama_model.py), which lists the tools
    once at the end of the system block and renders every user turn plain."""
    preamble = (
        "\n\nCutting Knowledge Date: December 2023\n\nWhen you receive a tool call response, use the "
        "output to format an answer to the orginal user question.\n\nYou are a helpful assistant "
        "with tool calling capabilities."
    )
    if in_system:
        preamble += (
            " You have access to the following functions. To call a function, please respond with JSON for a "
            'function call. Respond in the format {"name": function name, "parameters": dictionary of '
            "argument name and its value}. Do not use variables." + "".join("\n\n" + _json(t) for t in tools)
        )
    out = _system_block(
        system, tools, "<|start_header_id|>system<|end_header_id|>", "\n\n", preamble, "<|eot_id|>"
    )
    for i, m in enumerate(messages):
        last = i == len(messages) - 1
        if m.role == "user":
            out += "<|start_header_id|>user<|end_header_id|>"
            if tools and last and not in_system:
                out += (
                    "\n\nGiven the following functions, please respond with a JSON for a function call with "
                    "its proper arguments that best answers the given prompt.\n\nRespond in the format "
                    '{"name": function name, "parameters": dictionary of argument name and its value}. '
                    "Do not use variables.\n\n"
                )
                out += "".join(_json(t) + "\n" for t in tools)
                out += "\nQuestion: " + m.content + "<|eot_id|>"
            else:
                out += "\n\n" + m.content + "<|eot_id|>"
            if last:
                out += LLAMA_HEADER
        elif m.role == "assistant":
            out += "<|start_header_id|>assistant<|end_header_id|>"
            if m.tool_calls:
                out += "\n" + "".join(_llama_call(*_call(c)) for c in m.tool_calls)
            else:
                out += "\n\n" + m.content
            if not last:
                out += "<|eot_id|>"
        elif m.role == "tool":
            out += "<|start_header_id|>ipython<|end_header_id|>\n\n" + m.content + "<|eot_id|>"
            if last:
                out += LLAMA_HEADER
    return out


def _llama3_turn(system: str, prompt: str, response: str, final: bool = False) -> str:
    out = f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>" if system else ""
    out += f"<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>" if prompt else ""
    return out + LLAMA_HEADER + response + ("" if final else "<|eot_id|>")


def _llama3(messages: list[Message]) -> str:
    """The legacy loop of template.Execute: (system, prompt, response) triples; tool messages ignored."""
    out, system, prompt, response = "", "", "", ""
    for m in messages:
        if m.role == "system":
            if prompt or response:
                out += _llama3_turn(system, prompt, response)
                system = prompt = response = ""
            system = m.content
        elif m.role == "user":
            if response:
                out += _llama3_turn(system, prompt, response)
                system = prompt = response = ""
            prompt = m.content
        elif m.role == "assistant":
            response = m.content
    return out + _llama3_turn(system, prompt, response, final=True)


def _qwen25(system: str, messages: list[Message], tools: list[dict[str, Any]]) -> str:
    listed = (
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are "
        "provided with function signatures within <tools></tools> XML tags:\n<tools>"
        + "".join('\n{"type": "function", "function": ' + _json(t["function"]) + "}" for t in tools)
        + "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
        'within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, '
        '"arguments": <args-json-object>}\n</tool_call>'
    )
    out = _system_block(system, tools, "<|im_start|>system", "\n", listed, "<|im_end|>\n")
    for i, m in enumerate(messages):
        last = i == len(messages) - 1
        if m.role == "user":
            out += "<|im_start|>user\n" + m.content + "<|im_end|>\n"
        elif m.role == "assistant":
            out += "<|im_start|>assistant\n"
            if m.content:
                out += m.content
            elif m.tool_calls:
                calls = "".join(_qwen_call(*_call(c)) for c in m.tool_calls)
                out += "<tool_call>\n" + calls + "</tool_call>"
            if not last:
                out += "<|im_end|>\n"
        elif m.role == "tool":
            out += "<|im_start|>user\n<tool_response>\n" + m.content + "\n</tool_response><|im_end|>\n"
        if m.role != "assistant" and last:
            out += QWEN_HEADER
    return out


def render(template: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """The prompt Ollama would build for this request with `template` (one of TEMPLATES)."""
    system, collated = collate(messages)
    tools = list(tools or [])
    if template in ("llama3.1", "llama3.1-copilot"):
        return _llama31(system, collated, tools, in_system=template == "llama3.1-copilot")
    if template == "llama3":
        return _llama3(collated)
    if template == "qwen2.5":
        return _qwen25(system, collated, tools)
    raise ValueError(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")


def render_request(template: str, request: dict[str, Any]) -> str:
    """`render` over a recorded /api/chat body."""
    return render(template, list(request.get("messages") or []), list(request.get("tools") or []))


def template_values(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The data Ollama executes a Messages template with (template.Execute): `.System` and `.Messages` after
    collation, `.Tools`; messages, tool calls and tools as the Go structs the template sees (tools and
    arguments print as JSON, like their String methods)."""
    system, collated = collate(messages)

    def call(i: int, raw: dict[str, Any]) -> Struct:
        name, arguments = _call(raw)
        return Struct(ID="", Function=Struct(Index=i, Name=name, Arguments=Struct(text=arguments)))

    def tool(raw: dict[str, Any]) -> Struct:
        function = dict(raw.get("function") or {})
        parameters = dict(function.get("parameters") or {})
        kinds = {"Type": parameters.get("type", ""), "Required": parameters.get("required")}
        shape = Struct(text=_json(parameters), Properties=parameters.get("properties") or {}, **kinds)
        named = {"Name": function.get("name", ""), "Description": function.get("description", "")}
        described = Struct(text=_json(function), Parameters=shape, **named)
        return Struct(text=_json(raw), Type=raw.get("type", ""), Items=None, Function=described)

    return {
        "System": system,
        "Messages": [
            Struct(
                Role=m.role,
                Content=m.content,
                Thinking="",
                Images=[],
                ToolName="",
                ToolCallID="",
                ToolCalls=[call(i, c) for i, c in enumerate(m.tool_calls)],
            )
            for m in collated
        ],
        "Tools": [tool(t) for t in tools or []],
        "Response": "",
        "Think": False,
        "ThinkLevel": "",
        "IsThinkSet": False,
    }


def execute_template(
    text: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> str:
    """The prompt a Messages template's Go *text* yields for this request (bench/go_template.py runs it)."""
    return execute(text, template_values(messages, tools))


def answer_header(template: str) -> str:
    return QWEN_HEADER if template == "qwen2.5" else LLAMA_HEADER


def ends_with_answer_header(template: str, prompt: str) -> bool:
    return prompt.endswith(answer_header(template))


def tool_list_present(prompt: str, tools: list[dict[str, Any]]) -> bool:
    """Every tool's schema is written in the prompt (as the templates above write it)."""
    return bool(tools) and all(_json(t) in prompt or _json(t.get("function")) in prompt for t in tools)


def last_user_turn(template: str, messages: list[dict[str, Any]]) -> str:
    """The collated content of the last user message (what the newest trader turn renders as)."""
    _, collated = collate(messages)
    users = [m.content for m in collated if m.role == "user"]
    return users[-1] if users else ""


def shared_prefix(a: str, b: str) -> int:
    """Length of the common prefix of two prompts (characters)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
