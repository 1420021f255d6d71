"""N `copilot serve` workers on one Redis behind HAProxy: `make scale` (`python -m server.scale --workers 3`).

HAProxy (Debian's `haproxy`) listens on the server port and spreads requests over the workers round-robin;
every worker is a whole copilot (its own Copilot, ticker standby, notice reader), the state is in Redis, so
any worker answers any request. Server-Sent Events pass through as they are written (HAProxy does not buffer
responses; `timeout tunnel` keeps a quiet stream open). A worker that dies is taken out by the health check
(GET /api/health every `CHECK_SECONDS`) and a request that could not connect to it is sent to another one
(`retry-on conn-failure`, never a request the worker may have received, so a POST is not run twice).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from server.in_thread import free_port

ROOT = Path(__file__).resolve().parents[1]
CHECK_SECONDS = 2.0


def haproxy_config(
    port: int, workers: list[int], host: str = "127.0.0.1", check_seconds: float = CHECK_SECONDS
) -> str:
    """The HAProxy configuration of a load balancer on `host:port` before workers on the `workers` ports."""
    check_ms = int(check_seconds * 1000)
    servers = "\n".join(
        f"    server w{i} 127.0.0.1:{p} check inter {check_ms} fall 1 rise 1"
        for i, p in enumerate(workers, 1)
    )
    return f"""global
    maxconn 4096

defaults
    mode http
    option http-server-close
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    timeout tunnel 1h
    timeout queue 30s
    retries 3
    retry-on conn-failure
    option redispatch

frontend copilot
    bind {host}:{port}
    default_backend workers

backend workers
    balance roundrobin
    option httpchk GET /api/health
    http-check expect status 200
{servers}
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).is_file()), None
    )
    if found is None:
        raise SystemExit("haproxy is not installed: `apt-get install haproxy` (Debian), or `make haproxy`")
    return found


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]


@dataclass
class Deployment:
    """HAProxy on `port` and one process per worker port, on the Redis of `env` (REDIS_URL)."""

    env: dict[str, str]
    workdir: Path
    workers: int = 3
    port: int = 0
    command: Callable[[int], list[str]] = serve_command
    worker_env: Callable[[int, int], dict[str, str]] | None = None  # (worker index, port) -> extra env
    root: Path = ROOT  # the checkout the workers run (a benchmark compares two)
    worker_ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.worker_ports[i]}"

    def log(self, i: int) -> Path:
        return self.workdir / f"worker-{i}.log"

    def start(self, wait_seconds: float = 120) -> Deployment:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.worker_ports = [free_port() for _ in range(self.workers)]
        # All at once, as a deployment starts (graph.checkpointer tolerates the race to create the indexes).
        for i, port in enumerate(self.worker_ports):
            self.procs.append(self._spawn(i, port))
        config = self.workdir / "haproxy.cfg"
        config.write_text(haproxy_config(self.port, self.worker_ports))
        out = (self.workdir / "haproxy.log").open("wb")
        self.haproxy = subprocess.Popen([haproxy_binary(), "-db", "-f", str(config)], stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        for i in range(self.workers):
            self.wait_healthy(self.worker_url(i), i, wait_seconds)
        self.wait_healthy(self.url, None, wait_seconds)
        return self

    def _spawn(self, i: int, port: int) -> subprocess.Popen[bytes]:
        env = {**self.env, **(self.worker_env(i, port) if self.worker_env else {})}
        out = self.log(i).open("ab")
        return subprocess.Popen(
            self.command(port),
            cwd=self.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def restart(self, i: int, wait_seconds: float = 120) -> None:
        """Start worker `i` again on its port (after it was killed)."""
        self.procs[i] = self._spawn(i, self.worker_ports[i])
        self.wait_healthy(self.worker_url(i), i, wait_seconds)

    def wait_healthy(self, url: str, i: int | None, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            proc = self.haproxy if i is None else self.procs[i]
            if proc is not None and proc.poll() is not None:
                log = self.workdir / "haproxy.log" if i is None else self.log(i)
                raise RuntimeError(
                    f"{url}: process exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer within {seconds} s")

    def kill9(self, i: int) -> None:
        os.killpg(self.procs[i].pid, signal.SIGKILL)
        self.procs[i].wait(timeout=10)

    def stop(self) -> list[int]:
        """Ctrl-C to every worker, then HAProxy; the workers' exit codes."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=30))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes.append(proc.wait(timeout=10))
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(timeout=10)
        return codes


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument(
        "--port", type=int, default=None, help="the load balancer's port (default: server.port)"
    )
    args = parser.parse_args()
    from config import load_settings
    from server.cli import embedded_redis

    settings = load_settings()
    env = dict(os.environ)
    redis, started = None, False
    if settings.embedded_redis:  # one Redis for all the workers, started here (each `serve` would race)
        redis = embedded_redis(settings)
        started = redis.start()
        env["REDIS_URL"] = redis.url
    deployment = Deployment(env, ROOT / "var" / "scale", args.workers, args.port or settings.server.port)
    try:
        deployment.start()
        ports = ", ".join(map(str, deployment.worker_ports))
        print(f"Trading Copilot on {deployment.url}: HAProxy in front of {args.workers} workers on ports")
        print(f"{ports} (logs in {deployment.workdir}); Ctrl-C stops them all")
        while all(p.poll() is None for p in [deployment.haproxy, *deployment.procs] if p is not None):
            time.sleep(1)
        print("a process of the deployment exited; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        deployment.stop()
        if redis is not None and started:
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())
