"""A small web app: reads its greeting from the config sidecar, serves it on :8080.

The app depends on the sidecar being HEALTHY, so by the time this starts the sidecar is
answering; it exits cleanly on SIGTERM.
"""

import json
import os
import signal
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))
CONFIG_URL = os.environ.get("CONFIG_URL", "http://127.0.0.1:8081/config")

with urllib.request.urlopen(CONFIG_URL, timeout=2) as response:
    config = json.load(response)
print(f"app: got config from sidecar: {config}", flush=True)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "greeting": config["greeting"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print("app: " + format % args, flush=True)


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)


def on_sigterm(signum: int, frame: object) -> None:
    print("app: SIGTERM received, shutting down", flush=True)
    server.server_close()
    sys.exit(0)


signal.signal(signal.SIGTERM, on_sigterm)
print(f"app: listening on 127.0.0.1:{PORT}", flush=True)
server.serve_forever()
