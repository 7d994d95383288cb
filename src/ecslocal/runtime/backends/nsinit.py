"""The init of a container's PID namespace (its PID 1), run as ``python -I -S nsinit.py FD argv…``.

``unshare --pid --fork --kill-child --mount-proc`` starts it as the namespace's first process;
it forks the container's command, so the app is *not* PID 1 (the process backend keeps
today's host semantics: an app without a SIGTERM handler dies of it, exit 143). It

* forwards every catchable signal it receives to the app (a namespace's init only receives
  signals from outside for which it has a handler, so it installs one for each);
* reaps every process re-parented to it (orphans of double forks, health checks' leftovers);
* reports on file descriptor FD, one line, whether the app's exec worked: ``ok`` or the errno
  (the daemon learns the init's identity then, and logs runc's reason for a failure its
  look-up before the spawn could not foresee); FD is close-on-exec for the app;
* exits with the app's status (128 + signal if it was signalled). When it exits the kernel
  SIGKILLs everything else in the namespace: nothing the container started outlives it.

Standard library only and no site import, so it stays small (about 3 MB anonymous memory,
counted in the container's cgroup; the RSS watchdog sums the tree from the app down).
"""

# The C module, not ``signal``: that one imports enum and functools (a few ms per start).
import _signal as signal
import os
import sys

# Python ignores these at start-up; an exec'd program must get them back at their default
# (as subprocess's restore_signals does).
_RESTORE = (signal.SIGPIPE, signal.SIGXFSZ)
_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD}


def _forwardable() -> list[int]:
    return [s for s in signal.valid_signals() if s not in _UNCATCHABLE and 0 < s < signal.NSIG]


def main() -> int:
    report = int(sys.argv[1])
    argv = sys.argv[2:]
    os.set_inheritable(report, False)
    sigs = _forwardable()
    # Block every signal across the fork: one that arrives before the app exists is held,
    # then forwarded once its pid is known.
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    app = 0

    def forward(signum: int, _frame: object) -> None:
        if app > 0:
            try:
                os.kill(app, signum)
            except ProcessLookupError:
                pass

    for s in sigs:
        try:
            signal.signal(s, forward)
        except (OSError, ValueError, RuntimeError):
            pass
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    app = os.fork()
    if app == 0:
        os.close(ready_r)
        for s in sigs:
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
    os.close(ready_w)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)
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
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 127
        if pid == app:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
