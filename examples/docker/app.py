"""A tiny web app: GET / tells which settings it received (never their values).

SIGTERM stops it gracefully (exit 0). The handler matters in a container: in
exec mode the app is PID 1, and PID 1 has no default action for SIGTERM, so
without it `docker stop` waits its timeout and then SIGKILLs the app (137).
"""

import http.server
import json
import os
import signal


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({name: name in os.environ for name in ("DATABASE_URL", "API_KEY")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


def stop(signum, frame):
    raise SystemExit(0)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    server = http.server.HTTPServer(("", port), Handler)
    signal.signal(signal.SIGTERM, stop)
    print(f"listening on :{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        print("stopped", flush=True)
