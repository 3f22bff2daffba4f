"""A training worker thread: gradient steps off the streaming thread.

work() must never wait on training (DESIGN.md, real time). Blocks hand jobs
to a TrainingWorker, which runs them in order on its own thread.

blocking=False (hardware, real time): when `max_pending` jobs are already
    waiting, a new job is dropped and counted; the streaming thread goes on.
blocking=True (simulation): submit() waits for room, so no job is ever
    dropped and every batch trains, in order.
"""
import queue
import threading


class TrainingWorker:
    def __init__(self, max_pending=8, blocking=False, on_error=None, name="e2e-training"):
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive integer, got {max_pending!r}")
        self.blocking = bool(blocking)
        self._queue = queue.Queue(maxsize=max_pending)
        self._on_error = on_error
        self.done = 0
        self.dropped = 0
        self.errors = 0
        self._stop = object()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn, *args):
        """Queue fn(*args). Returns False if it was dropped (non-blocking and full)."""
        if not self._thread.is_alive():
            self.dropped += 1
            return False
        if self.blocking:
            self._queue.put((fn, args))
            return True
        try:
            self._queue.put_nowait((fn, args))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def _run(self):
        while True:
            item = self._queue.get()
            try:
                if item is self._stop:
                    return
                if isinstance(item, threading.Event):  # a drain() marker, not a job
                    item.set()
                    continue
                fn, args = item
                fn(*args)
                self.done += 1
            except Exception as e:  # a failing step must not kill the worker
                self.errors += 1
                if self._on_error:
                    self._on_error(e)
            finally:
                self._queue.task_done()

    def drain(self, timeout=None):
        """Wait until every queued job has run. Returns True if it finished in time."""
        if not self._thread.is_alive():
            return True
        done = threading.Event()
        # A marker behind everything already queued (waits for room, even in non-blocking mode).
        self._queue.put(done)
        return done.wait(timeout)

    def stop(self, timeout=5.0):
        """Finish queued jobs, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(self._stop)
            self._thread.join(timeout)

    @property
    def pending(self):
        return self._queue.qsize()
