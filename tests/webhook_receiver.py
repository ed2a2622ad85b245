"""A webhook receiver for tests and the bench: a threaded HTTP server on 127.0.0.1 that keeps each
request (path, headers, raw body, when) and answers as `answer(path)` says: (status, headers, delay).

With `trickle_seconds`, it then sends its answer's headers a byte every 0.1 s for that long, as a
receiver that never times out a read but never finishes either."""

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float


def answer_ok(path):
    return 200, {}, 0.0


class Receiver:
    def __init__(self, answer=answer_ok, trickle_seconds=0.0):
        self.answer = answer
        self.trickle_seconds = trickle_seconds
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, dict(self.headers), body, time.monotonic()))
                status, headers, delay = receiver.answer(self.path)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                if receiver.trickle_seconds:
                    self._trickle(receiver.trickle_seconds)
                for name, value in (headers | {"Content-Length": "2"}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"ok")

            def _trickle(self, seconds):
                self.flush_headers()
                self.wfile.write(b"X-Slow: ")
                until = time.monotonic() + seconds
                while time.monotonic() < until:
                    self.wfile.write(b"a")
                    self.wfile.flush()
                    time.sleep(0.1)
                self.wfile.write(b"\r\n")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook", host="127.0.0.1"):
        return f"http://{host}:{self.server.server_address[1]}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
