"""Where training jobs run: a worker thread (real time) or inline (simulation).

work() must never wait on training with a radio (DESIGN.md, real time):
blocks hand jobs to a TrainingWorker, which runs them in order on its own
thread. In simulation, reproducible runs matter more: an InlineWorker runs
each job inside the call that submits it, so every batch trains, in order,
and a flowgraph that ends has finished all its training (its last loss
messages leave before it stops). Both count jobs and failures the same way.

TrainingWorker(blocking=False) (hardware, real time): when `max_pending`
    jobs are already waiting, a new job is dropped and counted; the
    streaming thread goes on.
TrainingWorker(blocking=True): submit() waits for room, so no job is ever
    dropped, and the thread still overlaps training with streaming.
"""
import queue
import threading

from .validate import integer


class TrainingWorker:
    def __init__(self, max_pending=8, blocking=False, on_error=None, name="e2e-training"):
        integer("max_pending", max_pending, 1)
        self.blocking = bool(blocking)
        self._queue = queue.Queue(maxsize=max_pending)
        self._on_error = on_error
        self.done = 0
        self.dropped = 0
        self.errors = 0
        self._stop = object()
        self._name = name
        self._thread = None
        self.start()

    def start(self):
        """Start the thread; after stop() this starts a new one (a flowgraph run again trains again)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
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


class InlineWorker:
    """TrainingWorker's interface, running each job at once in the caller's thread.

    A failing job is counted (and reported to on_error), never raised into the
    caller: a bad step must not stop a flowgraph.
    """

    blocking = True
    pending = 0
    dropped = 0

    def __init__(self, on_error=None):
        self._on_error = on_error
        self.done = self.errors = 0

    def submit(self, fn, *args):
        try:
            fn(*args)
            self.done += 1
        except Exception as e:
            self.errors += 1
            if self._on_error:
                self._on_error(e)
        return True

    def drain(self, timeout=None):
        return True

    def start(self):
        pass

    def stop(self, timeout=None):
        pass
