"""Work in child processes that can be killed at a deadline, with every solver they started.

Why processes: a time limit is a promise (`--timeout T` answers by T plus a little), but a solver
inside a C call (cvc5, z3, HiGHS) cannot be stopped from Python, and some ignore their own limits
in some phases. A forked child can always be stopped: `kill_group` sends SIGKILL to its whole
process group, so solver binaries and portfolio members it started die with it. Children also ask
the kernel to kill them when their parent dies (`PR_SET_PDEATHSIG`), so even a SIGKILLed `nnirc`
leaves no solver running.

Why fork: the child starts at once with the parent's parsed program and imports (a spawned
child would re-import numpy, z3, cvc5, HiGHS: about a second). The parent of a `Worker` runs no
solver threads itself, so forking is safe; where fork is missing, `Worker` is unavailable and
callers run in-process (`available()`).

`silence_solvers()` is the other half of the promise that no solver library writes on our
stdout or stderr: in a child, file descriptors 1 and 2 point at /dev/null (so a banner printed
by C code, say HiGHS 1.16's from its constructor, goes nowhere) while Python's `sys.stderr`
keeps writing to the real stderr for our own progress lines. Results travel over a pipe.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from nnir.errors import DslError, InputFileError, IrError, NnirError

_LIVE: dict[int, Worker] = {}  # pid -> worker still running, killed at exit
_PR_SET_PDEATHSIG = 1


def available() -> bool:
    """Can work run in killable child processes here (POSIX with fork)?"""
    return hasattr(os, "fork") and os.environ.get("NNIR_IN_PROCESS", "") in ("", "0")


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def after_fork() -> None:
    """In a freshly forked child: die with the parent, and give HiGHS a new thread pool.

    HiGHS keeps a global pool of worker threads; a fork copies the pool's state but not its
    threads, so the first solve in a child of a process that ran HiGHS would wait forever for
    them. Resetting the scheduler (a no-op where HiGHS never ran) starts a fresh pool.
    """
    die_with_parent()
    highspy = sys.modules.get("highspy")
    if highspy is not None:
        with contextlib.suppress(Exception):
            highspy.Highs.resetGlobalScheduler(False)


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by `pid` (the child and all it started), else the child."""
    for fn, target in ((getattr(os, "killpg", None), pid), (os.kill, pid)):
        if fn is None:
            continue
        try:
            fn(target, signal.SIGKILL)
            return
        except (ProcessLookupError, PermissionError):
            continue


def silence_solvers() -> None:
    """In a child: fds 1 and 2 to /dev/null; `sys.stdout` to /dev/null, `sys.stderr` kept.

    Our own messages use `sys.stderr` (a duplicate of the real stderr); C libraries writing to
    fd 1 or 2 write nowhere. Results go back over the pipe, never over stdout.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    try:
        err = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the child
    sys.stderr = os.fdopen(err, "w", buffering=1, encoding="utf-8", errors="replace")


@contextlib.contextmanager
def quiet_fds():
    """Point fds 1 and 2 at /dev/null for the duration (for C code that prints, in-process).

    Used around the few library calls known to print before they can be told not to (HiGHS's
    constructor). Python-level writes are flushed first so nothing of ours is lost.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    try:
        saved = (os.dup(1), os.dup(2))
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


@dataclass
class Failure:
    """What a child sends when its function raised: enough to re-raise or report it."""

    kind: str          # "nnir" (an NnirError), "internal" (any other exception)
    message: str       # rendered (NnirError.render()) or "TypeName: text"
    exit_code: int     # what `nnirc` should exit with for it
    trace: str = ""    # the child's traceback text (shown with --debug)


class Gone:
    """The child ended without a reply (killed, out of memory, crashed)."""

    def __init__(self, code):
        self.code = code

    def __repr__(self):
        return f"Gone({self.code})"


TIMEOUT = object()  # `Worker.recv`: nothing arrived in time


class Worker:
    """A forked child running `fn(send, *args)`; `send(obj)` passes a picklable object up.

    The child leads its own process group, dies with its parent, and has its solvers silenced.
    An exception in `fn` arrives as a `Failure`; a child that ends with no reply as `Gone`.
    """

    def __init__(self, fn, *args, silence: bool = True):
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        self._conn, child = ctx.Pipe(duplex=False)
        self.done = False
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the child
            code = 0
            try:
                self._conn.close()
                os.setpgid(0, 0)
                after_fork()
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _LIVE.clear()
                if silence:
                    silence_solvers()
                try:
                    fn(child.send, *args)
                except BaseException as exc:  # noqa: BLE001 - everything goes to the parent
                    child.send(failure_of(exc))
                    code = 1
            finally:
                with contextlib.suppress(BaseException):
                    child.close()
                os._exit(code)
        child.close()
        with contextlib.suppress(OSError):
            os.setpgid(self.pid, self.pid)  # also here: no race with an early kill
        _LIVE[self.pid] = self

    def recv(self, timeout: float | None = None):
        """The next object from the child, `TIMEOUT`, or `Gone(exit code)`."""
        if self.done:
            return Gone(None)
        if timeout is not None and not self._conn.poll(max(0.0, timeout)):
            return TIMEOUT
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            return Gone(self.reap())

    def reap(self, wait: bool = True):
        """Collect the child's exit status (None if it is still running and `wait` is False)."""
        if self.done:
            return None
        try:
            pid, status = os.waitpid(self.pid, 0 if wait else os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid == 0:
            return None
        self.done = True
        _LIVE.pop(self.pid, None)
        self._conn.close()
        return os.waitstatus_to_exitcode(status)

    def kill(self) -> None:
        """Kill the child and everything in its process group, then reap it."""
        if self.done:
            return
        kill_group(self.pid)
        self.reap()


def failure_of(exc: BaseException) -> Failure:
    trace = traceback.format_exc()
    if isinstance(exc, NnirError):
        code = getattr(exc, "exit_code", None) or (
            1 if isinstance(exc, (DslError, IrError, InputFileError)) else 3)
        return Failure("nnir", exc.render(), code, trace)
    return Failure("internal", f"{type(exc).__name__}: {exc}", 70, trace)


def call(fn, *args, timeout: float | None = None, **kwargs) -> Any:
    """`fn(*args, **kwargs)` in a killable child; `TIMEOUT` if it overran, a `Failure` if it
    raised, `Gone` if it died. In-process (no limit enforced) where fork is unavailable."""
    if not available():
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            return failure_of(exc)
    w = Worker(lambda send: send(fn(*args, **kwargs)))
    try:
        return w.recv(timeout)
    finally:
        w.kill()  # after a reply too: nothing the child started may outlive the call


def kill_all() -> None:
    """Kill every live child (at exit, on SIGTERM, on Ctrl-C)."""
    for w in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            w.kill()


def _on_term(signum, frame):  # SIGTERM/SIGHUP: unwind like Ctrl-C, so files get written
    raise KeyboardInterrupt(f"signal {signum}")


def install_handlers() -> None:
    """In the `nnirc` process: children die at exit; SIGTERM/SIGHUP unwind like Ctrl-C, and
    Ctrl-C does even when the process was started with SIGINT ignored (Python then keeps it
    ignored; a test harness or a script's background job passes that on)."""
    atexit.register(kill_all)
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, _on_term)


def monotonic_deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


__all__ = ["Failure", "Gone", "TIMEOUT", "Worker", "after_fork", "available", "call",
           "die_with_parent",
           "install_handlers", "kill_all", "kill_group", "quiet_fds", "silence_solvers"]
