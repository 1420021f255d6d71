"""The copilot's own Ollama model, `<llm.model>-copilot`: the configured Llama 3.x model with a chat template
that writes the tool list into the system block, so consecutive requests share their whole prompt prefix.

Ollama's stock `llama3.1` template writes the tool list into the *last* user message, and leaves it out when
the last message is a tool result: each request rewrites the previous one's tail, and the KV cache is reused
only up to the turn before. Meta's own Llama 3.1 chat template has the other placement too
(`tools_in_user_message` false: "You have access to the following functions…" and the tool JSON in the system
message); COPILOT_TEMPLATE is Ollama's `llama3.1` template with that placement, the rest rendered as Ollama's.

`copilot model install` (install) creates the model through Ollama's POST /api/create (`from` the configured
model, `template`, `parameters` {num_ctx}); at start, with_copilot_model switches the copilot to it when
Ollama has it and `llm.use_copilot_model` is on (the default).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from config import Settings

log = logging.getLogger(__name__)

COPILOT_SUFFIX = "-copilot"
SHOW_TIMEOUT_SECONDS = 5.0

# Go text/template, as Ollama's template package parses it. Only the system block and the user turn differ
# from Ollama's `llama3.1` template: tools are listed once, in the system block; a user turn is always plain.
COPILOT_TEMPLATE = """\
{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

Cutting Knowledge Date: December 2023

When you receive a tool call response, use the output to format an answer to the orginal user question.

You are a helpful assistant with tool calling capabilities. You have access to the following functions. \
To call a function, please respond with JSON for a function call. Respond in the format {"name": function \
name, "parameters": dictionary of argument name and its value}. Do not use variables.
{{- range $.Tools }}

{{ . }}
{{- end }}
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

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

# What a base model's own template must contain for COPILOT_TEMPLATE to fit it: Llama 3.x's header and
# end-of-turn tokens, and tool support (Ollama's llama3.1, llama3.2 and llama3.3 templates all have them).
LLAMA3_MARKERS = ("<|start_header_id|>", "<|eot_id|>", ".Tools")


class InstallError(RuntimeError):
    """`copilot model install` could not create the model; the message says why and what to do."""


def copilot_model_name(model: str) -> str:
    """`llama3.1:8b-instruct-q5_K_M` -> `llama3.1:8b-instruct-q5_K_M-copilot` (the suffix joins the tag, or
    the name when there is no tag: `llama3.1` -> `llama3.1-copilot`)."""
    return model if model.endswith(COPILOT_SUFFIX) else model + COPILOT_SUFFIX


def create_request(settings: Settings) -> dict[str, Any]:
    """The POST /api/create body (Ollama's CreateRequest): the new name, `from`, `template`, `parameters`.
    Ollama keeps the base model's other parameters (its stop tokens) and replaces those given here."""
    return {
        "model": copilot_model_name(settings.llm.model),
        "from": settings.llm.model,
        "template": COPILOT_TEMPLATE,
        "parameters": {"num_ctx": settings.llm.num_ctx},
    }


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error") or response.text)
    except ValueError:
        return response.text[:300]


def _show(client: httpx.Client, name: str, base_url: str) -> dict[str, Any] | None:
    """Ollama's /api/show for `name`; None when Ollama does not have it (404)."""
    try:
        response = client.post("/api/show", json={"model": name})
    except httpx.TransportError:
        raise InstallError(
            f"Ollama is not reachable at {base_url}: start it (`ollama serve`) or set llm.base_url"
        ) from None
    if response.status_code == 404:
        return None
    if response.is_error:
        raise InstallError(
            f"Ollama answered /api/show with HTTP {response.status_code}: {_error_text(response)}"
        )
    info: dict[str, Any] = response.json()
    return info


def _progress(part: dict[str, Any]) -> str:
    status = str(part.get("status", ""))
    total, completed = part.get("total"), part.get("completed")
    if isinstance(total, int | float) and total and isinstance(completed, int | float):
        return f"{status} {completed / total:.0%}"
    return status


def create_model(client: httpx.Client, body: dict[str, Any], show: Callable[[str], None]) -> None:
    """POST /api/create, each streamed status shown; InstallError unless the stream ends with "success"."""
    name, done = body["model"], False
    try:
        with client.stream("POST", "/api/create", json=body) as response:
            if response.is_error:
                response.read()
                raise InstallError(
                    f"Ollama refused to create {name} (HTTP {response.status_code}): {_error_text(response)}"
                )
            for line in response.iter_lines():
                if not line.strip():
                    continue
                part = json.loads(line)
                if "error" in part:
                    raise InstallError(f"Ollama could not create {name}: {part['error']}")
                show(_progress(part))
                done = part.get("status") == "success"
    except (httpx.TransportError, ValueError) as exc:
        raise InstallError(f"the answer to /api/create broke off ({type(exc).__name__}: {exc})") from None
    if not done:
        raise InstallError(f'Ollama ended /api/create without "success": {name} may not have been created')


def install(settings: Settings, show: Callable[[str], None]) -> str:
    """Create `<llm.model>-copilot` from llm.model on the configured Ollama (replacing an older one of that
    name); `show` gets each progress line. Returns the new name; InstallError says what went wrong."""
    llm = settings.llm
    if llm.model.endswith(COPILOT_SUFFIX):
        raise InstallError(f"llm.model ({llm.model}) is already a copilot model: set it to its base model")
    body = create_request(settings)
    with httpx.Client(base_url=llm.base_url, timeout=llm.request_timeout) as client:
        base = _show(client, llm.model, llm.base_url)
        if base is None:
            raise InstallError(
                f"model '{llm.model}' is not pulled on {llm.base_url}: run `ollama pull {llm.model}`"
            )
        template = str(base.get("template") or "")
        if not all(marker in template for marker in LLAMA3_MARKERS):
            raise InstallError(
                f"model '{llm.model}' does not use a Llama 3.x chat template with tools; "
                "`copilot model install` supports Llama 3.1 / 3.2 / 3.3 models only"
            )
        show(f"creating {body['model']} from {llm.model} (tools in the system block, num_ctx {llm.num_ctx})")
        create_model(client, body, show)
        created = _show(client, body["model"], llm.base_url)
    if created is None or created.get("template") != COPILOT_TEMPLATE:
        raise InstallError(
            f"Ollama reported success, but {body['model']} does not have the copilot's template"
        )
    if "tools" not in (created.get("capabilities") or ["tools"]):
        raise InstallError(f"Ollama created {body['model']} without the tools capability")
    return str(body["model"])


async def copilot_model_present(settings: Settings) -> bool | None:
    """Whether Ollama has `<llm.model>-copilot` (None: Ollama did not answer); logs when it is stale."""
    name, llm = copilot_model_name(settings.llm.model), settings.llm
    timeout = min(llm.request_timeout, SHOW_TIMEOUT_SECONDS)
    try:
        async with httpx.AsyncClient(base_url=llm.base_url, timeout=timeout) as client:
            response = await client.post("/api/show", json={"model": name})
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return False if response.status_code == 404 else None
    if response.json().get("template") != COPILOT_TEMPLATE:
        log.warning("%s has another template than this copilot's: run `copilot model install` again", name)
    return True


async def with_copilot_model(settings: Settings) -> Settings:
    """The settings the copilot chats with: llm.model replaced by `<llm.model>-copilot` when Ollama has it and
    llm.use_copilot_model is on; otherwise (off, another provider, absent, Ollama not answering) unchanged."""
    llm = settings.llm
    if not llm.use_copilot_model or llm.provider != "ollama" or llm.model.endswith(COPILOT_SUFFIX):
        return settings
    present = await copilot_model_present(settings)
    if not present:
        if present is False:
            log.info("using %s; `copilot model install` creates %s (KV-cache prefix reuse)", llm.model,
                     copilot_model_name(llm.model))  # fmt: skip
        return settings
    name = copilot_model_name(llm.model)
    log.info("using %s (the copilot's template on %s)", name, llm.model)
    return settings.model_copy(update={"llm": llm.model_copy(update={"model": name})})
