"""gunicorn's settings for the web service (Dockerfile and docker-compose.yml:
`gunicorn config.wsgi -c python:config.gunicorn_conf`). Options on the command line win.

Threaded workers (`gthread`): a worker's main loop keeps telling the arbiter it is alive while its
threads answer requests, so `timeout` restarts only a worker that hangs, not one streaming a long
export (gunicorn's default `sync` worker is killed mid-download once a request takes longer than
`timeout`: an overview export of a few hundred thousand rows was cut off at 60 s). Each thread has
its own database connection.

Environment: WEB_CONCURRENCY (worker processes, gunicorn's own variable; default 1),
GUNICORN_THREADS (threads per worker, default 4), GUNICORN_BIND (default 0.0.0.0:8000)."""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 60  # a worker whose main loop stalls this long is restarted; a request may run longer
graceful_timeout = 60  # on a restart, requests in progress get this long to finish
accesslog = "-"
control_socket_disable = True  # gunicorn's management socket (in $HOME) is not used
