#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run one shell command in a lab guest over its control serial port.

    guest-ctl.py [--timeout SECONDS] SOCKET COMMAND...

SOCKET is the unix socket of QEMU's chardev (server=on) behind the guest's
control port; the guest side is iscsi_control_loop in
lab/guest/iscsi-target.sh.  Sends "ID BASE64-COMMAND", waits for
"OUT ID STATUS BASE64-OUTPUT", prints the output and exits with the
command's status: 124 when no answer came in time, 125 when the socket
could not be reached.  QEMU serves one client at a time: a second caller
waits until the first one disconnects.
"""
import base64
import os
import socket
import sys
import time


def main(argv):
    timeout = 60.0
    args = argv[1:]
    if len(args) >= 2 and args[0] == "--timeout":
        timeout = float(args[1])
        args = args[2:]
    if len(args) < 2:
        sys.stderr.write(__doc__)
        return 2
    path, command = args[0], " ".join(args[1:])
    ident = os.urandom(6).hex()
    deadline = time.monotonic() + timeout
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(("%s %s\n" % (ident, base64.b64encode(command.encode()).decode())).encode())
    except OSError as e:
        sys.stderr.write("guest-ctl: %s: %s\n" % (path, e))
        return 125
    buf = b""
    prefix = ("OUT %s " % ident).encode()
    while True:
        # Lines of earlier callers that gave up may still come: skip them.
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(prefix):
                rest = line[len(prefix):].split(b" ", 1)
                out = base64.b64decode(rest[1]) if len(rest) > 1 else b""
                sys.stdout.buffer.write(out)
                if out and not out.endswith(b"\n"):
                    sys.stdout.buffer.write(b"\n")
                return int(rest[0])
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        except OSError as e:
            sys.stderr.write("guest-ctl: %s: %s\n" % (path, e))
            return 125
        if not data:
            sys.stderr.write("guest-ctl: %s: closed before the answer\n" % path)
            return 125
        buf += data
    sys.stderr.write("guest-ctl: no answer from the guest within %g s to: %s\n" % (timeout, command))
    return 124


if __name__ == "__main__":
    sys.exit(main(sys.argv))
