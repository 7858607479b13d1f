"""A WSGI app for tests/integration/test_gunicorn.py: answers with CHUNKS lines, one every PAUSE
seconds, like an export streaming a large file."""

import time

CHUNKS = 6
PAUSE = 0.5


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        for i in range(CHUNKS):
            time.sleep(PAUSE)
            yield f"line {i}\n".encode()

    return body()
