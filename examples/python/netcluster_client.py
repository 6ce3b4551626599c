#!/usr/bin/env python3
"""A minimal netcluster client in Python, standard library only.

It speaks the JSON text protocol (PROTOCOL.md section 10): JSON objects,
each followed by a NUL byte, on the channel's Unix socket.

    python3 netcluster_client.py A --emit hello --data '{"n": 1}' --count 1

connects to channel A, emits "hello", prints every event it hears as one
JSON object per line, and exits after --count events or --timeout
seconds (exit status 1 on timeout). Without --emit it only listens, as
the original agents could: the server takes a connection that stays
silent for a moment for a JSON client.
"""
import argparse
import json
import os
import socket
import sys


def default_socket(channel):
    """The socket path ncserver uses unless configured otherwise."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        return os.path.join(runtime, "netcluster", channel + ".sock")
    return "/tmp/netcluster-%d/%s.sock" % (os.getuid(), channel)


class Client:
    """One connection to one channel."""

    def __init__(self, path, timeout=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def emit(self, event, data=None, **extra):
        """Send an event; extra keys such as id, to, re are sent too."""
        msg = dict(extra, event=event, data=data)
        self.sock.sendall(json.dumps(msg).encode("utf-8") + b"\0")

    def messages(self):
        """Yield each event heard, as a dict, until the server closes."""
        while True:
            while b"\0" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                self.buf += chunk
            text, self.buf = self.buf.split(b"\0", 1)
            if text:
                yield json.loads(text)

    def close(self):
        self.sock.close()


def main():
    p = argparse.ArgumentParser(description="emit and listen on a netcluster channel")
    p.add_argument("channel")
    p.add_argument("--socket", help="socket path (default: the ncserver default for the channel)")
    p.add_argument("--emit", metavar="EVENT", help="event to emit once connected")
    p.add_argument("--data", default="null", help="its data, as JSON (default null)")
    p.add_argument("--count", type=int, default=0, help="exit after this many events (default: never)")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    args = p.parse_args()

    c = Client(args.socket or default_socket(args.channel), args.timeout)
    if args.emit:
        c.emit(args.emit, json.loads(args.data), channel=args.channel)
    heard = 0
    try:
        for msg in c.messages():
            print(json.dumps(msg), flush=True)
            if msg.get("event") == "nc-error":
                print("server closed the connection: %s" % msg["data"], file=sys.stderr)
                return 1
            heard += 1
            if heard == args.count:
                return 0
    except socket.timeout:
        print("timed out after %d events" % heard, file=sys.stderr)
        return 1
    finally:
        c.close()
    return 0 if args.count == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
