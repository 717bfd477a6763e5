"""A redis-server of a test's own on a free port, for tests that stop and restart Redis.

The shared Redis on 6379 is never stopped by a test. Without persistence, a restarted server comes back empty on
the same port, as a Redis that lost its data would.
"""

import socket
import subprocess
import tempfile

import redis

from tests.support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OwnRedis:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "OwnRedis":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=tempfile.gettempdir(),  # nothing is written (no persistence), but never into the repository
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            wait_until(
                client.ping,
                timeout=5,
                interval=0.025,
                ignoring=(redis.ConnectionError,),
                message=f"redis-server on port {self.port} to answer PING",
            )
        finally:
            client.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)
