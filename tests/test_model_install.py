"""`copilot model install` over real HTTP against the strict Ollama double, and the copilot using the model.

The double's /api/create follows Ollama's server/create.go (see tests/support/ollama_double.py); the CLI is
the real `copilot` entry point, the app the real one (graph, ChatOllama, health, warm-up).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.ollama_render import LLAMA31_TEMPLATE
from graph.model.errors import reset_chat_outcomes
from graph.model.ollama_model import COPILOT_TEMPLATE, copilot_model_name, create_model, with_copilot_model
from graph.model.ollama_server import model_status, warm_up
from server.app import create_app
from server.cli import main
from tests.support.api_support import api_settings
from tests.support.ollama import NATIVE, PLAIN
from tests.support.ollama_double import OllamaDouble, Reply
from tests.support.serving import serve_app

DERIVED = NATIVE + "-copilot"


@pytest.fixture
def double() -> Iterator[tuple[OllamaDouble, str]]:
    """A fresh double per test: creating a model changes what it serves."""
    fake = OllamaDouble(models={NATIVE: ["completion", "tools"], PLAIN: ["completion"]})
    with serve_app(fake.app()) as url:
        yield fake, url


def copilot(monkeypatch: pytest.MonkeyPatch, url: str, *args: str, model: str = NATIVE) -> int:
    monkeypatch.setenv("LLM__BASE_URL", url)
    monkeypatch.setenv("LLM__MODEL", model)
    monkeypatch.delenv("COPILOT_CONFIG", raising=False)
    return main(["model", *args])


def test_install_creates_the_derived_model_through_api_create(
    double: tuple[OllamaDouble, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = double
    assert copilot(monkeypatch, url, "install") == 0
    out = capsys.readouterr().out
    assert fake.create_requests == [
        {"model": DERIVED, "from": NATIVE, "template": COPILOT_TEMPLATE, "parameters": {"num_ctx": 8192}}
    ]
    # Ollama's streamed progress, shown as it comes, then what happened.
    assert "  creating new layer sha256:" in out and "  writing manifest\n  success\n" in out
    assert f"created {DERIVED} from {NATIVE} (num_ctx 8192)" in out and "next start" in out
    show = httpx.post(f"{url}/api/show", json={"model": DERIVED}).json()
    assert show["template"] == COPILOT_TEMPLATE and "tools" in show["capabilities"]
    assert show["details"]["parent_model"] == NATIVE
    # The base model's stop tokens are kept; num_ctx is added.
    assert (
        '"<|eot_id|>"' in show["parameters"] and "num_ctx                        8192" in show["parameters"]
    )
    # Installing again replaces it: same layers, nothing new.
    assert copilot(monkeypatch, url, "install") == 0
    again = capsys.readouterr().out
    assert "creating new layer" not in again and again.count("using existing layer") == 4
    assert copilot(monkeypatch, url, "status") == 0
    assert f"{DERIVED}: present" in capsys.readouterr().out


def test_install_errors_say_what_to_do(
    double: tuple[OllamaDouble, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = double
    with serve_app(OllamaDouble().app()) as gone:
        pass  # a port where nothing answers any more
    assert copilot(monkeypatch, gone, "install") == 2
    assert f"Ollama is not reachable at {gone}: start it (`ollama serve`)" in capsys.readouterr().err
    assert copilot(monkeypatch, gone, "status") == 3

    assert copilot(monkeypatch, url, "install", model="llama3.1:70b") == 2
    assert "run `ollama pull llama3.1:70b`" in capsys.readouterr().err
    assert copilot(monkeypatch, url, "install", model=PLAIN) == 2
    assert "supports Llama 3.1 / 3.2 / 3.3 models only" in capsys.readouterr().err
    assert fake.create_requests == []  # nothing was asked of /api/create, so nothing is pulled

    # Ollama refuses the request (a template it cannot parse): its own error, and no model.
    monkeypatch.setattr("graph.model.ollama_model.COPILOT_TEMPLATE", "{{ if .Tools }}unclosed")
    assert copilot(monkeypatch, url, "install") == 2
    err = capsys.readouterr().err
    assert (
        f"Ollama refused to create {DERIVED} (HTTP 400): template error: template: :1: unexpected EOF" in err
    )
    assert DERIVED not in fake.models


def test_an_error_inside_the_create_stream_is_a_failure(double: tuple[OllamaDouble, str]) -> None:
    """A `from` Ollama lacks is pulled first: "pulling manifest", then the registry's error in the stream."""
    fake, url = double
    shown: list[str] = []
    body = {"model": "x-copilot", "from": "llama3.1:70b", "template": COPILOT_TEMPLATE}
    with httpx.Client(base_url=url) as client, pytest.raises(Exception) as failure:
        create_model(client, body, shown.append)
    assert str(failure.value) == "Ollama could not create x-copilot: pull model manifest: file does not exist"
    assert shown == ["pulling manifest"] and "x-copilot" not in fake.models


def test_the_double_rejects_what_ollama_rejects(double: tuple[OllamaDouble, str]) -> None:
    fake, url = double
    good = {"model": "mine", "from": NATIVE, "template": COPILOT_TEMPLATE}
    cases = [
        (b"", 400, "missing request body"),
        ({"from": NATIVE}, 400, "invalid model name"),
        ({"model": "bad name!", "from": NATIVE}, 400, "invalid model name"),
        ({"model": "mine"}, 400, "neither 'from' or 'files' was specified"),
        ({**good, "parameters": "num_ctx 8192"}, 400, "cannot unmarshal string into Go struct field"),
        ({**good, "template": "{{ .Tools "}, 400, "template error: "),
        ({**good, "template": "x{{ end }}"}, 400, "template error: template: :1: unexpected {{end}}"),
        ({**good, "from": "nope:1b", "stream": False}, 500, "pull model manifest: file does not exist"),
    ]
    for body, status, error in cases:
        response = httpx.post(
            f"{url}/api/create", content=body if isinstance(body, bytes) else json.dumps(body)
        )
        assert response.status_code == status and error in response.json()["error"], (body, response.text)
    assert "mine" not in fake.models
    pulled = httpx.post(f"{url}/api/create", json={**good, "from": "nope:1b"})
    assert pulled.status_code == 200 and [json.loads(x) for x in pulled.text.splitlines()] == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]
    quiet = httpx.post(f"{url}/api/create", json={**good, "stream": False})
    assert quiet.status_code == 200 and quiet.json() == {"status": "success"}
    assert fake.created["mine"]["template"] == COPILOT_TEMPLATE and "tools" in fake.models["mine"]
    assert httpx.post(f"{url}/api/show", json={"model": NATIVE}).json()["template"] == LLAMA31_TEMPLATE


async def test_the_copilot_switches_to_the_derived_model_only_when_present(
    double: tuple[OllamaDouble, str], redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    fake, url = double
    settings = api_settings(redis_url, shared_data, tmp_path, llm={"base_url": url, "model": NATIVE})
    assert (await with_copilot_model(settings)).llm.model == NATIVE  # not created yet
    body = {"model": copilot_model_name(NATIVE), "from": NATIVE, "template": COPILOT_TEMPLATE}
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/api/create", json=body)).status_code == 200
    assert (await with_copilot_model(settings)).llm.model == DERIVED
    assert fake.show_requests[-1] == {"model": DERIVED}
    off = api_settings(redis_url, shared_data, tmp_path,
                       llm={"base_url": url, "model": NATIVE, "use_copilot_model": False})  # fmt: skip
    assert (await with_copilot_model(off)).llm.model == NATIVE
    down = api_settings(
        redis_url, shared_data, tmp_path, llm={"base_url": "http://127.0.0.1:9", "model": NATIVE}
    )
    assert (await with_copilot_model(down)).llm.model == NATIVE  # Ollama away: start on the configured model


@pytest.mark.parametrize("use", [True, False])
def test_a_served_copilot_chats_with_the_installed_model(
    use: bool, double: tuple[OllamaDouble, str], monkeypatch: pytest.MonkeyPatch, redis_url: str,
    shared_data: Path, tmp_path: Path,
) -> None:  # fmt: skip
    fake, url = double
    assert copilot(monkeypatch, url, "install") == 0
    reset_chat_outcomes()
    fake.queue(Reply(content="Hola, trader."))
    llm = {"base_url": url, "model": NATIVE, "use_copilot_model": use}
    with serve_app(create_app(api_settings(redis_url, shared_data, tmp_path, llm=llm))) as app:
        body = httpx.post(f"{app}/api/chat", json={"message": "hola", "session_id": "m1"}, timeout=60).json()
        health = httpx.get(f"{app}/api/health").json()
        for _ in range(200):  # the warm-up runs in the background from the start: wait for its request
            if fake.load_requests:
                break
            time.sleep(0.05)
    chosen = DERIVED if use else NATIVE
    assert body["response"] == "Hola, trader." and health["llm_status"] == "ok"
    assert [r["model"] for r in fake.requests] == [chosen] and fake.requests[0]["tools"]
    assert [r["model"] for r in fake.load_requests] == [chosen]  # the warm-up loads the model it chats with


async def test_a_derived_model_removed_after_start_says_how_to_get_it_back(
    double: tuple[OllamaDouble, str], monkeypatch: pytest.MonkeyPatch, redis_url: str, shared_data: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    fake, url = double
    assert copilot(monkeypatch, url, "install") == 0
    settings = api_settings(redis_url, shared_data, tmp_path, llm={"base_url": url, "model": NATIVE})
    chatting = await with_copilot_model(settings)
    del fake.models[DERIVED]  # `ollama rm` while the copilot runs
    assert await model_status(chatting) == "model_missing"
    reply = await warm_up(chatting)
    assert f"model '{DERIVED}' is not installed" in reply and "`copilot model install` and restart" in reply


def test_eval_model_scores_and_names_the_derived_model_it_chats_with(
    double: tuple[OllamaDouble, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    redis_url: str, shared_data: Path, tmp_path: Path,
) -> None:  # fmt: skip
    fake, url = double
    assert copilot(monkeypatch, url, "install") == 0
    capsys.readouterr()
    cases = tmp_path / "cases.yaml"
    cases.write_text("- {id: chat-en-x, lang: en, category: chat, prompt: Hello there}\n", encoding="utf-8")
    fake.queue(Reply(content="Hello, trader: what would you like to look at?"))
    for name, value in {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "data"),
                        "FALLBACK_DATA_DIR": str(shared_data), "LOGGING__FILE": ""}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    out = tmp_path / "eval.json"
    assert main(["eval-model", "--cases", str(cases), "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert f"Evaluating {DERIVED} (ollama) at {url} on 1 cases" in said.err
    assert f"Model: {DERIVED}, 1 cases" in said.out
    assert json.loads(out.read_text(encoding="utf-8"))["model"] == DERIVED
    assert [r["model"] for r in fake.requests] == [DERIVED]
