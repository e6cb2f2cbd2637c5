"""A Flask app that answers every request with its SECRET, as a real app
would use a credential. Run by gunicorn on the sockets secretrun holds.

A SECRET ending in ``-broken`` makes the app refuse to load (the new
command fails to start); one ending in ``-slow`` makes it load for a minute
(the new command is never ready in time)."""

import os
import time

from flask import Flask

_secret = os.environ.get("SECRET", "")
if _secret.endswith("-broken"):
    raise RuntimeError("this configuration cannot start")
if _secret.endswith("-slow"):
    time.sleep(60)

app = Flask(__name__)


@app.get("/")
def index():
    return _secret
