"""Running a file's queries for `nnirc` in a killable child, so `--timeout` is a promise.

The parent (the `nnirc` process) reads nothing and solves nothing: a forked child
(`nnir.proc.Worker`) loads the file and answers the queries one by one, sending each `Result`
up the pipe as it is done. The parent prints it, writes the `-o` file atomically after every
query (so Ctrl-C or a kill loses nothing finished), and enforces the limits:

* query k must be answered within T + `kill_grace(T)` of the moment query k-1 was answered (for
  the first query, of the command's start: reading the file counts against its limit);
* a child past that is killed with everything it started; the query is reported `timeout`, and
  a fresh child (re-reading the file, on the next query's clock) answers the rest.

The child's own deadline is T, so it normally answers itself, with the details of what it found;
the kill is the backstop for a solver that ignores its limit. Where fork is unavailable (or
`NNIR_IN_PROCESS=1`), queries run in-process as before, with only the in-process deadlines.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from nnir import proc, progress
from nnir.backends import registry
from nnir.cli_common import ChildError, kill_grace, load_all, selected
from nnir.deadline import Deadline
from nnir.queries.result import Result
from nnir.queries.route import options_for
from nnir.queries.run import run_query


@dataclass
class Plan:
    """What the child found in the file: the selected queries, in order."""

    names: list[str]
    kinds: list[str]


@dataclass
class Session:
    """The parent's view of a run: results so far, in order."""

    results: list[Result] = field(default_factory=list)
    plan: Plan | None = None
    interrupted: bool = False


def _child(send, path, select, kinds, backend, timeout, options, skip, t0) -> None:
    """In the child: load, check the backend, then answer each selected query not in `skip`."""
    prog = load_all(path)
    queries = selected(prog, select, kinds)
    if backend != "auto":  # fail fast on an unknown or missing backend
        registry.get_backend(backend, **options)
    # the first query pays for reading: its time started at t0
    start = None if t0 is None else Deadline(None if timeout is None else t0 + timeout)
    send(Plan([q.name for q in queries], [q.kind for q in queries]))
    for q in queries:
        if q.name in skip:
            continue
        send(("start", q.name))
        left = timeout
        if start is not None:
            left, start = start.left(), None
        send(run_query(prog, q, backend, left, **options_for(q.kind, backend, options)))
    send(("end",))


def run_queries(path, select, kinds, backend, timeout, options, on_start, on_result) -> Session:
    """Answer the file's selected queries (see the module doc); `on_start(k, n, name, kind)`
    and `on_result(result, n)` are called in the parent as things happen.

    Raises:
        NnirError (rebuilt from the child's) for a file or command-line problem found while
        loading, RuntimeError for an internal error in the child.
    """
    ses = Session()
    # long work shows a status line on a terminal (`nnir.progress`, configured by `nnirc`'s
    # -q/-v); the child inherits the setting

    def started(*a) -> None:
        progress.clear()
        on_start(*a)

    def answered(*a) -> None:
        progress.clear()
        on_result(*a)

    if not proc.available():
        return _in_process(ses, path, select, kinds, backend, timeout, options, started,
                           answered)
    clock = time.monotonic()  # when the current query's time started
    grace = None if timeout is None else kill_grace(timeout)
    current = None
    first = True
    try:
        while True:
            skip = {r.query for r in ses.results}
            worker = proc.Worker(_child, path, select, kinds, backend, timeout, options, skip,
                                 clock if first else None)
            first = False
            ended = False
            while not ended:
                left = None if timeout is None else clock + timeout + grace - time.monotonic()
                reply = worker.recv(left)
                if isinstance(reply, Plan):
                    ses.plan = ses.plan or reply
                elif isinstance(reply, tuple) and reply[0] == "start":
                    current = reply[1]
                    started(_index(ses, current), len(ses.plan.names), current,
                             _kind(ses, current))
                elif isinstance(reply, Result):
                    ses.results.append(reply)
                    current = None
                    clock = time.monotonic()
                    answered(reply, len(ses.plan.names))
                elif isinstance(reply, tuple) and reply[0] == "end":
                    worker.kill()
                    return ses
                elif isinstance(reply, proc.Failure):
                    worker.kill()
                    raise _rebuild(reply)
                else:  # TIMEOUT or Gone: the current query (or the reading) gets the blame
                    worker.kill()
                    res = _lost(ses, current, reply, timeout, path)
                    ses.results.append(res)
                    clock = time.monotonic()
                    answered(res, len(ses.plan.names) if ses.plan else 1)
                    if ses.plan is None or len(ses.results) >= len(ses.plan.names):
                        return ses
                    current = None
                    ended = True  # start a fresh child for the rest
    except KeyboardInterrupt:
        proc.kill_all()
        ses.interrupted = True
        return ses
    finally:
        proc.kill_all()


def _index(ses: Session, name: str) -> int:
    return ses.plan.names.index(name) + 1


def _kind(ses: Session, name: str) -> str:
    return ses.plan.kinds[ses.plan.names.index(name)]


def _lost(ses: Session, current, reply, timeout, path) -> Result:
    """The result for a query whose child was killed at the limit or died."""
    if current is None and ses.plan is None:
        name, kind, what = path, "load", f"reading {path}"
    elif current is None:  # between queries: the next one had not started
        name = next(n for n in ses.plan.names if n not in {r.query for r in ses.results})
        kind, what = _kind(ses, name), f"query '{name}'"
    else:
        name, kind, what = current, _kind(ses, current), f"query '{current}'"
    if reply is proc.TIMEOUT:
        return Result(name, kind, "timeout", None, float(timeout),
                      message=f"{what} did not finish within the time limit ({timeout:g} s); "
                      "its process and solvers were stopped")
    return Result(name, kind, "error", None,
                  message=f"the process answering {what} ended unexpectedly (exit status "
                  f"{reply.code}; out of memory?)")


def _rebuild(f: proc.Failure) -> Exception:
    if f.kind == "nnir":
        return ChildError(f.message, f.exit_code, f.trace)
    return ChildError(f"internal error: {f.message}\nhint: rerun with --debug for a traceback, "
                      "and please report it", 70, f.trace)


def _in_process(ses, path, select, kinds, backend, timeout, options, on_start, on_result):
    """The same without a child: no backstop for a solver that overruns."""
    sent = []

    def send(obj):
        sent.append(obj)
        if isinstance(obj, Plan):
            ses.plan = obj
        elif isinstance(obj, tuple) and obj[0] == "start":
            on_start(_index(ses, obj[1]), len(ses.plan.names), obj[1], _kind(ses, obj[1]))
        elif isinstance(obj, Result):
            ses.results.append(obj)
            on_result(obj, len(ses.plan.names))

    try:
        _child(send, path, select, kinds, backend, timeout, options, set(), time.monotonic())
    except KeyboardInterrupt:
        ses.interrupted = True
    return ses


__all__ = ["Plan", "Session", "run_queries"]
