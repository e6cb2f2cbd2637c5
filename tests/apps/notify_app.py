"""A minimal systemd-style service for the overlap tests: checks it got the
socket (LISTEN_FDS, LISTEN_PID), sends READY=1 to $NOTIFY_SOCKET (the one
secretrun gave it), then waits for SIGTERM and exits 0."""

import os
import signal
import socket
import sys
import time

if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
    sys.exit(f"not handed a socket: LISTEN_PID={os.environ.get('LISTEN_PID')} pid={os.getpid()}")
listener = socket.socket(fileno=3)
assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if os.environ.get("SECRET", "").endswith("-broken"):
    sys.exit("this configuration cannot start")
address = os.environ.get("NOTIFY_SOCKET", "")
if address:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect("\0" + address[1:] if address.startswith("@") else address)
        s.sendall(b"STATUS=starting")
        time.sleep(0.1)
        s.sendall(b"READY=1\nSTATUS=serving")
while True:
    time.sleep(60)
