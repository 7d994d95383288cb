"""The init of a container's PID namespace (its PID 1), run as ``python -I -S nsinit.py FD argv…``.

``unshare --pid --fork --kill-child=STKFLT --mount-proc`` starts it as the namespace's first
process; it forks the container's command, so the app is *not* PID 1 (the process backend
keeps today's host semantics: an app without a SIGTERM handler dies of it, exit 143). It

* relays the app's output: the app's descriptors 1 and 2 are pipes, and the init copies what
  comes out of them to its own 1 and 2 (the container's spool files, opened ``O_APPEND`` by the
  daemon). A pipe cannot be truncated, so ``echo x >/dev/stderr`` (the shell opens
  /proc/self/fd/2 with ``O_TRUNC``) no longer rewinds the spool and loses what the daemon had
  not read yet; a write the file system refuses (disk full) is dropped, as Docker's json-file
  driver drops it, and the app goes on;
* forwards every catchable signal it receives to the app (a namespace's init only receives
  signals from outside for which it has a handler, so it installs one for each) except
  ``SIGSTKFLT`` (:data:`END`, which nothing else sends), which means "end the container":
  the daemon sends it instead of SIGKILL, the reaper and a restarted daemon's recovery too, and
  the kernel on the death of ``unshare`` (``--kill-child=STKFLT``: the daemon died);
* reaps every process re-parented to it (orphans of double forks, health checks' leftovers);
* reports on file descriptor FD, one line, whether the app's exec worked: ``ok`` or the errno
  (the daemon learns the init's identity then, and logs runc's reason for a failure its
  look-up before the spawn could not foresee); FD is close-on-exec for the app;
* ends when the app exits or on :data:`END`: it SIGKILLs everything else in the namespace
  (``kill(-1)`` from a namespace's PID 1 reaches only that namespace, pid_namespaces(7)),
  relays what the pipes still hold until every writer is gone (at most
  :data:`DRAIN_SECONDS`), and exits with the app's status (128 + signal if it was
  signalled). So nothing the container started outlives it, and no line the app wrote
  before its end — or before a daemon ``kill -9`` — is lost in a pipe.

Standard library only and no site import, so it stays small (about 3 MB anonymous memory,
counted in the container's cgroup; the RSS watchdog sums the tree from the app down).
"""

# The C module, not ``signal``: that one imports enum and functools (a few ms per start).
import _signal as signal
import os
import select
import sys
import time

#: "End the container, keep its output": not forwarded. SIGSTKFLT is unused on Linux (signal(7):
#: "Stack fault on coprocessor (unused)"), and unshare 2.38's --kill-child takes only the
#: classic names (no real-time signal).
END = signal.SIGSTKFLT
#: How long the pipes are relayed after the namespace's other processes were killed.
DRAIN_SECONDS = 2.0
CHUNK = 65536

# Python ignores these at start-up; an exec'd program must get them back at their default
# (as subprocess's restore_signals does).
_RESTORE = (signal.SIGPIPE, signal.SIGXFSZ)
_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, END}


def _forwardable() -> list[int]:
    return [s for s in signal.valid_signals() if s not in _UNCATCHABLE and 0 < s < signal.NSIG]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
        except OSError:  # ENOSPC, EIO, EPIPE: this chunk is lost, the app goes on
            return


class _Relay:
    """The app's output pipes, copied to the init's own 1 and 2 as they become readable."""

    def __init__(self, pipes: dict[int, int], wake: int) -> None:
        self.pipes = pipes  # read end -> where it goes
        self.wake = wake
        self.poll = select.poll()
        for fd in (*pipes, wake):
            os.set_blocking(fd, False)
            self.poll.register(fd, select.POLLIN)

    def round(self, timeout_ms: float | None) -> None:
        for fd, _ in self.poll.poll(timeout_ms):
            if fd == self.wake:
                try:
                    while os.read(self.wake, 512):
                        pass
                except OSError:  # BlockingIOError: emptied
                    pass
                continue
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                _write_all(self.pipes[fd], data)
            else:  # every writer of this pipe is gone
                self.poll.unregister(fd)
                os.close(fd)
                del self.pipes[fd]

    def drain(self) -> None:
        deadline = time.monotonic() + DRAIN_SECONDS
        while self.pipes:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.round(left * 1000)


def main() -> int:
    report = int(sys.argv[1])
    argv = sys.argv[2:]
    os.set_inheritable(report, False)
    sigs = _forwardable()
    own = [*sigs, END, signal.SIGCHLD]
    # Block every signal across the fork: one that arrives before the app exists is held,
    # then forwarded once its pid is known.
    signal.pthread_sigmask(signal.SIG_BLOCK, own)
    app = 0
    ending = False

    def forward(signum: int, _frame: object) -> None:
        if app > 0:
            try:
                os.kill(app, signum)
            except ProcessLookupError:
                pass

    def end(_signum: int, _frame: object) -> None:
        nonlocal ending
        ending = True

    def child(_signum: int, _frame: object) -> None:
        pass  # the wake-up byte is what counts: the loop reaps

    for s in sigs:
        try:
            signal.signal(s, forward)
        except (OSError, ValueError, RuntimeError):
            pass
    signal.signal(END, end)
    signal.signal(signal.SIGCHLD, child)
    # Any signal writes its number here (C level, at delivery): poll() wakes for it.
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    app = os.fork()
    if app == 0:
        os.dup2(out_w, 1)  # dup2's copies are inheritable; the originals close on exec
        os.dup2(err_w, 2)
        for s in own:
            try:
                signal.signal(s, signal.SIG_DFL)
            except (OSError, ValueError, RuntimeError):
                pass
        for s in _RESTORE:
            signal.signal(s, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(ready_w, str(exc.errno).encode())
        os._exit(127)
    for fd in (out_w, err_w, ready_w):
        os.close(fd)
    relay = _Relay({out_r: 1, err_r: 2}, wake_r)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, own)
    failed = b""
    while True:
        chunk = os.read(ready_r, 32)
        if not chunk:
            break
        failed += chunk
    os.close(ready_r)
    try:
        os.write(report, (failed or b"ok") + b"\n")
    except OSError:
        pass
    os.close(report)
    status = None
    while True:
        status = _reap(app, status)
        if status is not None or ending:
            break
        relay.round(None)
    # The container's end: nobody else in the namespace may write on, then what is in the
    # pipes goes out. Only as the namespace's PID 1 (as anything else, kill(-1) would reach
    # every process this user may signal).
    if os.getpid() == 1:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    elif status is None:
        try:
            os.kill(app, signal.SIGKILL)
        except OSError:
            pass
    while status is None:
        try:
            pid, raw = os.waitpid(app, 0)
        except ChildProcessError:
            status = 127
            break
        if pid == app:
            status = _code(raw)
    relay.drain()
    return status


def _code(raw: int) -> int:
    code = os.waitstatus_to_exitcode(raw)
    return 128 - code if code < 0 else code


def _reap(app: int, status: int | None) -> int | None:
    """Reap every exited child; the app's status once it is among them."""
    while True:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no child left at all
            return 127 if status is None else status
        if pid == 0:
            return status
        if pid == app:
            status = _code(raw)


if __name__ == "__main__":
    sys.exit(main())
