"""A local viewer: the bundled Neuroglancer client and local volumes over HTTP on 127.0.0.1.

`/` serves the client folder (index.html reads the state from the URL hash); `/volumes/<i>/`
serves the folder of volume i, with CORS headers (any origin may read, e.g. a public
Neuroglancer), byte ranges (sharded volumes) and `*.gz` chunks sent as gzip-encoded. Paths
never leave their folder. Every request is logged on standard output as `GET <path> <status>`.
"""

import mimetypes
import os
import re
import sys
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VOLUMES = "/volumes/"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Types the browser insists on (module scripts, WebAssembly); the rest from mimetypes.
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
          ".css": "text/css", ".html": "text/html", ".json": "application/json"}


def _content_type(path):
    ext = os.path.splitext(path)[1].lower()
    if os.path.basename(path) == "info":
        return "application/json"
    return _TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def _inside(root, relative):
    """The real path of `relative` under `root`, or None when it would leave `root`."""
    root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(root, relative.lstrip("/")))
    return path if path == root or path.startswith(root + os.sep) else None


def make_handler(client_dir, folders, log=sys.stdout):
    """A request handler serving `client_dir` at / and folders[i] at /volumes/<i>/."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _target(self):
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            if path.startswith(VOLUMES):
                index, _, rest = path[len(VOLUMES):].partition("/")
                if not index.isdigit() or int(index) >= len(folders):
                    return None
                return _inside(folders[int(index)], rest)
            target = _inside(client_dir, path)
            if target and os.path.isdir(target):
                target = os.path.join(target, "index.html")
            return target

        def end_headers(self):
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Expose-Headers", "Content-Range, Content-Length")
            super().end_headers()

        def do_OPTIONS(self):  # noqa: N802 (CORS preflight)
            self.send_response(HTTPStatus.NO_CONTENT)
            self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Range, Content-Type")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self):  # noqa: N802
            self._serve(body=False)

        def do_GET(self):  # noqa: N802
            self._serve(body=True)

        def _serve(self, body):
            target, encoding = self._target(), None
            if target and not os.path.isfile(target) and os.path.isfile(target + ".gz"):
                target, encoding = target + ".gz", "gzip"  # cloud-volume's compressed chunks
            if not target or not os.path.isfile(target):
                # the client has no icon: say so without an error in the browser's console
                self.send_response(HTTPStatus.NO_CONTENT if self.path == "/favicon.ico"
                                   else HTTPStatus.NOT_FOUND)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = os.path.getsize(target)
            start, stop, status = 0, size, HTTPStatus.OK
            match = _RANGE.match(self.headers.get("Range", ""))
            if match and encoding is None and (match[1] or match[2]):
                if match[1]:
                    start, stop = int(match[1]), min(size, int(match[2]) + 1 if match[2] else size)
                else:
                    start = max(0, size - int(match[2]))
                if start >= stop:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = HTTPStatus.PARTIAL_CONTENT
            self.send_response(status)
            self.send_header("Content-Type", _content_type(target[:-3] if encoding else target))
            self.send_header("Content-Length", str(stop - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Cache-Control", "no-cache")
            if encoding:
                self.send_header("Content-Encoding", encoding)
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
            self.end_headers()
            if body:
                with open(target, "rb") as handle:
                    handle.seek(start)
                    _copy(handle, self.wfile, stop - start)

        def log_request(self, code="-", size="-"):
            line = f"{self.command} {urllib.parse.urlsplit(self.path).path} {int(code)}\n"
            with lock:  # one whole line at a time from the handler threads
                log.write(line)
                log.flush()

        def log_message(self, format, *args):  # noqa: A002 (errors only; requests above)
            print(f"server: {format % args}", file=sys.stderr, flush=True)

    return Handler


def _copy(src, dst, count):
    while count > 0:
        block = src.read(min(count, 1 << 20))
        if not block:
            return
        dst.write(block)
        count -= len(block)


def start_server(client_dir, folders, port=0, host="127.0.0.1"):
    """A threading HTTP server bound to host:port (0 = a free port), not yet serving."""
    server = ThreadingHTTPServer((host, port), make_handler(client_dir, folders))
    server.daemon_threads = True
    return server


def volume_url(server, index):
    """The URL at which `server` serves volume `index`."""
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{VOLUMES}{index}"
