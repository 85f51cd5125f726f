"""The control plane's event loop: one thread, a selector, timers, and calls from other threads.

Nothing here knows memif. ``control.Socket`` registers its listener and connection sockets and
arms its timers here; user threads hand work to the loop with :meth:`EventLoop.call` (wait for
the result) or :meth:`EventLoop.call_soon` (fire and forget). The thread starts on first use,
sleeps in ``select()`` and wakes only for readiness, a due timer or a call. A callback that
raises is logged and the loop goes on: one broken connection never stops the control plane.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import os
import queue
import selectors
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from .errors import SocketError

__all__ = ["EventLoop", "Timer"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class Timer:
    """A pending :meth:`EventLoop.call_later`; ``cancel()`` stops it from running."""

    __slots__ = ("cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.fn = _nothing  # what the callback holds goes now, not when the time comes


def _nothing() -> None:
    pass


class EventLoop:
    """One control thread. Every method but :meth:`call`, :meth:`call_soon`, :meth:`start` and
    :meth:`stop` must be called on the loop's own thread (from a callback, timer or call)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._selector = selectors.DefaultSelector()
        self._wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._selector.register(self._wakeup, selectors.EVENT_READ, None)
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = False

    # ---- any thread -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the loop's thread is alive and not asked to stop."""
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.current_thread() is self._thread

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._start_lock:
            if self._stopping:
                raise SocketError(errno.ESHUTDOWN, f"control loop {self.name} is stopped")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"memif-ct control {self.name}",
                                                daemon=True)
                self._thread.start()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop's thread soon; never blocks. Its exceptions are logged."""
        self._calls.put(fn)
        self._wake()

    def submit(self, fn: Callable[[], _T]) -> Future[_T]:
        """Queue ``fn`` for the loop's thread and return a Future of its result; never blocks.

        On the loop's own thread it runs at once (the Future is already done).
        """
        fut: Future[_T] = Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller
                fut.set_exception(exc)

        if self.in_loop_thread():
            run()
            return fut
        self.start()
        self.call_soon(run)
        return fut

    def call(self, fn: Callable[[], _T], timeout_s: float = 30.0) -> _T:
        """Run ``fn`` on the loop's thread and return its result or raise its exception.

        On the loop's own thread it runs at once. Nothing on the loop blocks, so the timeout
        only trips if the process is starved; it raises SocketError(ETIMEDOUT).
        """
        if self.in_loop_thread():
            return fn()
        fut = self.submit(fn)
        try:
            return fut.result(timeout=timeout_s)
        except FutureTimeout:
            fut.cancel()
            raise SocketError(errno.ETIMEDOUT,
                              f"control loop {self.name} did not answer within {timeout_s} s") from None

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the thread after the calls already queued; True if it ended (or never ran).

        The selector and wakeup fd are closed only once the thread is gone: a live thread could
        otherwise use fd numbers that belong to other files by then.
        """
        with self._start_lock:
            self._stopping = True
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._wake()
            thread.join(timeout_s)
            if thread.is_alive():
                log.error("control loop %s did not stop within %s s; leaving its fds open", self.name, timeout_s)
                return False
        if thread is None or not thread.is_alive():
            self._selector.close()
            fd, self._wakeup = self._wakeup, -1
            if fd >= 0:
                os.close(fd)
        return True

    # ---- loop thread only -----------------------------------------------------------------

    def register(self, fileobj: Any, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``fileobj`` is readable."""
        self._selector.register(fileobj, selectors.EVENT_READ, callback)

    def unregister(self, fileobj: Any) -> None:
        """Stop watching ``fileobj`` (no error if it was not watched)."""
        try:
            self._selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> Timer:
        """Run ``fn`` on the loop's thread after ``delay_s`` seconds."""
        timer = Timer(time.monotonic() + max(0.0, delay_s), fn)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    # ---- the thread -----------------------------------------------------------------------

    def _wake(self) -> None:
        fd = self._wakeup
        if fd < 0:
            return  # closed: its number may belong to another file now
        try:
            os.eventfd_write(fd, 1)
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stopping:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            try:
                events = self._selector.select(timeout)
            except (OSError, ValueError):
                if self._stopping:
                    break
                log.exception("control loop %s: select failed", self.name)
                time.sleep(0.1)  # never spin on a broken selector
                continue
            for key, _mask in events:
                if key.data is None:
                    try:
                        os.eventfd_read(self._wakeup)
                    except OSError:
                        pass
                else:
                    self._guarded(key.data, "event handler")
            self._run_calls()
            self._run_timers()
        self._run_calls()

    def _guarded(self, fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except Exception:
            log.exception("control loop %s: %s failed", self.name, what)

    def _run_calls(self) -> None:
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                return
            self._guarded(fn, "call")

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._guarded(timer.fn, "timer")
