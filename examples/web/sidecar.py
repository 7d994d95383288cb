"""The config sidecar: takes a moment to warm up, then serves /config and /health on :8081."""

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("SIDECAR_PORT", "8081"))
WARMUP = float(os.environ.get("WARMUP_SECONDS", "1"))

print(f"sidecar: warming up for {WARMUP}s", flush=True)
time.sleep(WARMUP)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            body = b"ok"
        elif self.path == "/config":
            body = json.dumps({"greeting": os.environ.get("GREETING", "hello")}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


print(f"sidecar: serving on 127.0.0.1:{PORT}", flush=True)
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
