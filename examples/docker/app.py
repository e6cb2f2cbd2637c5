"""A tiny web app: GET / tells which settings it received (never their values)."""

import http.server
import json
import os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({name: name in os.environ for name in ("DATABASE_URL", "API_KEY")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    http.server.HTTPServer(("", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
