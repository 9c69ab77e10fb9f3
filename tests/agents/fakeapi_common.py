"""What both fake model APIs share: arguments, the loopback server, the
request log, steering words and server-sent events.

A fake prints "PORT n" on stdout once it listens (127.0.0.1 only) and
appends every request to --log as one JSON line {"method", "path",
"headers", "body"}. With --parent-pipe it exits when its stdin reaches EOF,
so a test that dies (its end of the pipe closes) never leaves a fake behind.
"""
import argparse
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Words in the last user message that steer the reply, and what they answer.
FAIL_WORDS = (("FAIL500", 500), ("FAIL401", 401), ("FAIL429", 429))
# Longest a HANG reply holds its stream open: bounded, so a forgotten fake
# request ends by itself.
HANG_SECONDS = 120

_log_lock = threading.Lock()


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--log", default="", help="append each request as a JSON line")
    p.add_argument("--parent-pipe", action="store_true",
                   help="exit when stdin reaches EOF (the parent is gone)")
    return p.parse_args()


def fail_code(text):
    """The HTTP status a steering word in text asks for, or None."""
    for word, code in FAIL_WORDS:
        if word in text:
            return code
    return None


def tool_command(text):
    """The shell command a USE_TOOL prompt asks for: the text after RUN:
    (to the end of its line), else `echo hello`."""
    m = re.search(r"RUN:([^\n]*)", text)
    return m.group(1).strip() if m and m.group(1).strip() else "echo hello"


class Handler(BaseHTTPRequestHandler):
    """Base handler: JSON replies, SSE events, the request log."""
    protocol_version = "HTTP/1.1"
    log_path = ""

    def log_message(self, *args):  # the request log replaces stderr noise
        pass

    def read_body(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}

    def record(self, body=None):
        if not self.log_path:
            return
        line = json.dumps({"method": self.command, "path": self.path,
                           "headers": dict(self.headers), "body": body}) + "\n"
        # One write(2) on an O_APPEND fd: a reader never sees half a line
        # (a buffered file would split a large request body).
        with _log_lock:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def send_json(self, code, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def start_sse(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def sse(self, name, obj):
        self.wfile.write(f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode())
        self.wfile.flush()

    def hang(self):
        """Hold the stream open until the client goes or HANG_SECONDS pass."""
        self.connection.settimeout(HANG_SECONDS)
        try:
            self.rfile.read(1)
        except OSError:
            pass

    def do_CONNECT(self):  # used as an HTTPS proxy: log the target, refuse
        self.record()
        self.send_json(403, {"error": "fake model API: no outside hosts", "target": self.path})


def _watch_stdin():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass
    os._exit(0)


def serve(args, handler_cls):
    handler_cls.log_path = args.log
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), handler_cls)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.parent_pipe:
        threading.Thread(target=_watch_stdin, daemon=True).start()
    print(f"PORT {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
