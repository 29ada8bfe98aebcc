"""Persistent worker processes that run fuzz cases one at a time, surviving their crashes.

Each worker is spawned once (importing xgen and onnxruntime once) and fed cases over a pipe; it
calls check(payload, send) and then sends ("done",). A worker that dies by a signal or exits
leaves its case's messages so far and its cause of death, and a fresh worker takes its place; a
case past its timeout has its worker killed the same way.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

Check = Callable[[bytes, Callable[[tuple], None]], None]
# Address space per worker: a huge allocation fails with MemoryError instead of taking the
# machine's memory from the rest of the suite.
MEMORY_LIMIT = 6 << 30
STARTUP_TIMEOUT = 120


@dataclass
class Finished:
    """A case as its worker left it: the messages it sent and how it died, if it did."""

    key: object
    messages: list[tuple] = field(default_factory=list)
    death: str | None = None


def _serve(conn: Connection, check: Check, env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - onnxruntime prints notices on failures
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    conn.send(("ready",))
    while True:
        payload = conn.recv()
        if payload is None:
            return
        try:
            check(payload, conn.send)
        except BaseException as e:  # noqa: BLE001 - a bug in check itself must still be seen
            conn.send(("raw", type(e).__name__, f"in the fuzz harness: {e}", ""))
        conn.send(("done",))


class _Worker:
    def __init__(self, check: Check, env: dict[str, str]):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, check, env), daemon=True)
        self.process.start()
        child.close()
        # A case's timeout starts once the worker has imported what it needs.
        if not self.conn.poll(STARTUP_TIMEOUT) or self.conn.recv() != ("ready",):
            self.process.kill()
            raise RuntimeError(f"a fuzz worker did not start in {STARTUP_TIMEOUT} s")
        self.case: Finished | None = None
        self.deadline = 0.0

    def start(self, key: object, payload: bytes, timeout: float) -> None:
        self.case, self.deadline = Finished(key), time.monotonic() + timeout
        self.conn.send(payload)

    def receive(self) -> bool:
        """Reads what the worker sent; True when its case is over (done, or the worker died)."""
        if self._drain():
            return True
        if self.process.is_alive():
            return False
        self.process.join()
        self._drain()  # what it wrote between the first drain and its death
        self.current().death = _cause_of_death(self.process.exitcode)
        return True

    def kill(self, reason: str) -> None:
        self.process.kill()
        self.process.join()
        self._drain()
        self.current().death = reason

    def _drain(self) -> bool:
        """Moves the messages waiting in the pipe to the case; True once "done" arrived."""
        try:
            while self.conn.poll():
                message = self.conn.recv()
                if message == ("done",):
                    return True
                self.current().messages.append(message)
        except (EOFError, OSError):
            pass
        return False

    def current(self) -> Finished:
        assert self.case is not None, "the worker has no case"
        return self.case

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _cause_of_death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exited with code {exitcode}"


class Runner:
    """One worker kept across cases handed over one at a time (a property test's examples)."""

    def __init__(self, check: Check, timeout: float = 60, env: dict[str, str] | None = None):
        self.check, self.timeout, self.env = check, timeout, env or {}
        self.worker = _Worker(check, self.env)

    def __call__(self, payload: bytes) -> Finished:
        worker = self.worker
        worker.start(None, payload, self.timeout)
        while not worker.receive():
            if (left := worker.deadline - time.monotonic()) <= 0:
                worker.kill(f"timed out after {self.timeout:g} s")
                break
            wait([worker.conn, worker.process.sentinel], left)
        if not worker.process.is_alive():
            self.worker = _Worker(self.check, self.env)
        return worker.current()

    def close(self) -> None:
        self.worker.stop()


def run_cases(
    cases: Iterable[tuple[object, bytes]],
    check: Check,
    workers: int = 1,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> Iterator[Finished]:
    """Runs check on each (key, payload) in worker processes (with env added to their
    environment); yields cases as they finish."""
    env = env or {}
    pending = iter(cases)
    pool = [_Worker(check, env) for _ in range(workers)]
    try:
        idle = list(pool)
        busy: list[_Worker] = []
        while True:
            while idle and (item := next(pending, None)) is not None:
                worker = idle.pop()
                worker.start(*item, timeout=timeout)
                busy.append(worker)
            if not busy:
                return
            soonest = min(w.deadline for w in busy) - time.monotonic()
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy], max(soonest, 0))
            for worker in list(busy):
                if not worker.receive():
                    if time.monotonic() < worker.deadline:
                        continue
                    worker.kill(f"timed out after {timeout:g} s")
                busy.remove(worker)
                yield worker.current()
                if worker.process.is_alive():
                    idle.append(worker)
                else:
                    pool.remove(worker)
                    replacement = _Worker(check, env)
                    pool.append(replacement)
                    idle.append(replacement)
    finally:
        for worker in pool:
            worker.stop()
