"""The purpose-built test child for supervisor tests.

    python tests/child_app.py --dir DIR [options]

Records, in DIR:

- ``<pid>.start.json`` once its handlers are installed: pid, ppid, pgid,
  sid, the terminal's foreground group, its environment, its signal mask
  and ignored signals (``SigBlk``/``SigIgn`` as read before Python touched
  anything but SIGPIPE/SIGXFSZ), and which std fds are terminals;
- ``events.log``: one ``<pid> <SIGNAME>`` line per signal received;
- ``<pid>.reload.<n>``: with ``--reload-file VAR``, the content of the
  file named by ``$VAR`` at start (n=0) and after each SIGHUP.

Options: ``--ignore-term`` (record SIGTERM and go on), ``--term-exit N``
(exit N on SIGTERM instead of dying by it), ``--int-exit`` (exit on SIGINT
by dying of it), ``--die-by SIG`` (kill itself with SIG after starting),
``--exit-after S`` and ``--exit-code N``, ``--orphan S`` (leave an orphaned
grandchild that exits after S seconds; its pid in ``orphan.pid``),
``--print VAR`` / ``--print-split VAR`` (write $VAR to stdout in one or two
writes), ``--stop-self`` (stop with SIGTSTP after starting, as Ctrl-Z would).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

# Read before Python installs anything more (it already ignores SIGPIPE
# and SIGXFSZ by the time this runs; tests allow for those two).
with open("/proc/self/status") as _status:
    _PROC = dict(line.rstrip("\n").split(":\t", 1) for line in _status if ":\t" in line)

RECORDED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGTERM",
            "SIGCONT", "SIGTSTP", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGXCPU",
            "SIGSTKFLT", "SIGURG", "SIGRTMIN", "SIGRTMAX")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ignore-term", action="store_true")
    ap.add_argument("--term-exit", type=int)
    ap.add_argument("--int-exit", action="store_true")
    ap.add_argument("--die-by")
    ap.add_argument("--exit-after", type=float)
    ap.add_argument("--exit-code", type=int, default=0)
    ap.add_argument("--orphan", type=float)
    ap.add_argument("--print", dest="print_var")
    ap.add_argument("--print-split")
    ap.add_argument("--reload-file")
    ap.add_argument("--stop-self", action="store_true")
    args = ap.parse_args()
    pid = os.getpid()
    events = os.open(os.path.join(args.dir, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    reloads = [0]

    def record(text: str) -> None:
        os.write(events, f"{pid} {text}\n".encode())

    def snapshot_file() -> None:
        path = os.environ[args.reload_file]
        with open(path, "rb") as src:
            data = src.read()
        _atomic(os.path.join(args.dir, f"{pid}.reload.{reloads[0]}"), data)
        reloads[0] += 1

    def on_signal(signum, frame) -> None:
        name = signal.Signals(signum).name
        record(name)
        if signum == signal.SIGTERM and not args.ignore_term:
            if args.term_exit is not None:
                os._exit(args.term_exit)
            _die(signal.SIGTERM)
        if signum == signal.SIGINT and args.int_exit:
            _die(signal.SIGINT)
        if signum == signal.SIGHUP and args.reload_file:
            snapshot_file()
        if signum == signal.SIGTSTP:
            signal.signal(signal.SIGTSTP, signal.SIG_DFL)
            os.kill(pid, signal.SIGTSTP)
            signal.signal(signal.SIGTSTP, on_signal)

    for name in RECORDED:
        signal.signal(getattr(signal, name), on_signal)

    if args.reload_file:
        snapshot_file()
    if args.orphan is not None:
        _leave_orphan(args.dir, args.orphan)
    tpgid = None
    for fd in (0, 1, 2):
        try:
            tpgid = os.tcgetpgrp(fd)
            break
        except OSError:
            continue
    start = {
        "pid": pid, "ppid": os.getppid(), "pgid": os.getpgrp(), "sid": os.getsid(0),
        "tpgid": tpgid, "env": dict(os.environ),
        "sigblk": int(_PROC.get("SigBlk", "0"), 16), "sigign": int(_PROC.get("SigIgn", "0"), 16),
        "isatty": [os.isatty(fd) for fd in (0, 1, 2)],
    }
    _atomic(os.path.join(args.dir, f"{pid}.start.json"), json.dumps(start).encode())

    if args.print_var:
        os.write(1, os.environ[args.print_var].encode() + b"\n")
    if args.print_split:
        value = os.environ[args.print_split].encode()
        half = len(value) // 2
        os.write(1, b"<" + value[:half])
        time.sleep(0.02)
        os.write(1, value[half:] + b">\n")
    if args.die_by:
        _die(getattr(signal, args.die_by))
    if args.stop_self:
        os.kill(pid, signal.SIGTSTP)

    deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
    limit = time.monotonic() + 300     # never outlive a broken test
    while time.monotonic() < limit:
        if deadline is not None and time.monotonic() >= deadline:
            sys.stdout.flush()
            os._exit(args.exit_code)
        time.sleep(0.02)
    os._exit(3)


def _die(signum: int) -> None:
    if signum not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    time.sleep(5)
    os._exit(99)


def _leave_orphan(directory: str, delay: float) -> None:
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        grandchild = os.fork()
        if grandchild == 0:
            os.close(r)
            os.close(w)
            time.sleep(delay)
            os._exit(0)
        os.write(w, str(grandchild).encode())
        os._exit(0)
    os.close(w)
    gpid = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(middle, 0)
    _atomic(os.path.join(directory, "orphan.pid"), gpid.encode())


def _atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
