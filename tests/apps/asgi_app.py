"""An ASGI app for uvicorn (``uvicorn --fd 3``) answering with its SECRET."""

import os

_secret = os.environ.get("SECRET", "").encode()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": _secret})
