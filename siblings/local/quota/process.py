"""The moto server behind a quota layer in its own process: the parent's handle and the child.

A fleet of hundreds of client threads and the server in one process contend for the GIL; a
separate process keeps the server's latency honest. The two sides agree on a small protocol:
the child prints its endpoint URL as its first line and exits when its stdin closes.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading

from siblings.local.quota.client import QuotaStatsClient
from siblings.local.quota.layer import QuotaLayer
from siblings.local.quota.table import check_scale


class QuotaServerProcess:
    """The moto server behind a quota layer in a child process (``python -m siblings.local.quota``).

    Loopback only. The child exits when :meth:`stop` closes its stdin (also if this process dies).
    """

    def __init__(
        self,
        quota_scale: float = 1.0,
        *,
        burst_seconds: float = 1.0,
        enabled: bool = True,
        python: str = sys.executable,
        startup_timeout: float = 60.0,
    ) -> None:
        check_scale(quota_scale)
        self._args = [
            python, "-m", "siblings.local.quota", "--port", "0",
            "--quota-scale", repr(float(quota_scale)), "--burst-seconds", repr(burst_seconds),
            "--exit-on-stdin-eof",
        ]
        if not enabled:
            self._args.append("--disabled")
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        if self._endpoint_url is None:
            raise RuntimeError("QuotaServerProcess is not started")
        return self._endpoint_url

    @property
    def pid(self) -> int:
        """The child's process id."""
        if self._process is None:
            raise RuntimeError("QuotaServerProcess is not started")
        return self._process.pid

    @property
    def client(self) -> QuotaStatsClient:
        """A stats client for the child's layer."""
        return QuotaStatsClient(self.endpoint_url)

    def start(self) -> QuotaServerProcess:
        """Spawn the child and wait until it prints its endpoint."""
        self._process = subprocess.Popen(
            self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(self._process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self._startup_timeout)
        if not line or not line[0].startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"quota server did not start: {line[0] if line else 'timeout'!r}")
        self._endpoint_url = line[0].strip()
        return self

    def stop(self) -> None:
        """Close the child's stdin and wait for it to exit (terminate it if it hangs)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin:
                process.stdin.close()
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=10)
        finally:
            if process.stdout:
                process.stdout.close()

    def __enter__(self) -> QuotaServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the moto server behind a quota layer; print its endpoint URL on stdout."""
    from siblings.local.server import LocalAwsServer

    parser = argparse.ArgumentParser(prog="python -m siblings.local.quota", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--quota-scale", type=float, default=1.0, help="multiplies every quota")
    parser.add_argument("--burst-seconds", type=float, default=1.0,
                        help="seconds of rate a full bucket holds (default %(default)s)")
    parser.add_argument("--disabled", action="store_true", help="count calls, throttle none")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="stop when stdin closes (used by QuotaServerProcess)")
    args = parser.parse_args(argv)

    layer = QuotaLayer(args.quota_scale, burst_seconds=args.burst_seconds, enabled=not args.disabled)
    server = LocalAwsServer(host=args.host, port=args.port, middleware=layer.wrap).start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(server.endpoint_url, flush=True)
    if args.exit_on_stdin_eof:

        def wait_for_eof() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=wait_for_eof, daemon=True).start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
