"""The embedded Redis Stack: modules loaded, AOF persistence across a restart, loopback only."""

from pathlib import Path

from server.in_thread import free_port
from tools.redis_embedded import EmbeddedRedis


def test_session_server_has_json_search_timeseries(redis_server: EmbeddedRedis) -> None:
    assert {"ReJSON", "search", "timeseries"} <= set(redis_server.modules())


def test_data_survives_restart_and_start_is_idempotent(tmp_path: Path) -> None:
    import redis

    server = EmbeddedRedis(port=free_port(), data_dir=tmp_path)
    assert server.start() is True
    try:
        assert server.start() is False  # already answering: nothing new started
        redis.Redis(port=server.port).set("k", "kept")
    finally:
        assert server.stop() is True
    assert not server.ping()
    server.start()
    try:
        assert redis.Redis(port=server.port).get("k") == b"kept"
        assert (tmp_path / "appendonlydir").is_dir()
    finally:
        server.stop()
