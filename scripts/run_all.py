#!/usr/bin/env python
"""Run the whole application in one terminal: the web server, a Celery worker and Celery beat as
child processes, each line of their output prefixed with its name. Ctrl-C (SIGINT) or SIGTERM
stops all of them; if one of them dies, the others are stopped too.

`make run` calls this after `migrate` and `seed_demo`. Without DATABASE_URL / REDIS_URL /
CELERY_BROKER_URL it runs on the embedded defaults (SQLite file, the file-system broker in
var/broker); with them set, the children use those. Options: --port (default $PORT or 8000),
--host (default 127.0.0.1), --gunicorn (instead of runserver)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
COLOURS = {"web": "\033[36m", "worker": "\033[33m", "beat": "\033[35m", "run_all": "\033[32m"}
RESET = "\033[0m"
STOP_TIMEOUT = 15  # seconds a child gets to stop before it is killed

_print_lock = threading.Lock()


def say(name: str, line: str) -> None:
    colour = COLOURS.get(name, "") if sys.stdout.isatty() else ""
    prefix = f"{colour}{name:>7} |{RESET if colour else ''} "
    with _print_lock:
        sys.stdout.write(prefix + line.rstrip("\n") + "\n")
        sys.stdout.flush()


def django_settings():
    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.conf import settings

    django.setup()
    return settings


def prepare(settings) -> dict[str, str]:
    """Create what the embedded defaults need; return a description for the banner."""
    var_dir = Path(settings.VAR_DIR)
    var_dir.mkdir(parents=True, exist_ok=True)
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("filesystem://"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        for key in ("data_folder_in", "data_folder_out", "processed_folder"):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
        broker_text = f"file system ({options['data_folder_in']})"
    else:
        broker_text = broker.split("@")[-1] if "@" in broker else broker
    db = settings.DATABASES["default"]
    db_text = f"{db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}" + (f" on {db['HOST']}" if db.get("HOST") else "")
    return {"database": db_text, "broker": broker_text, "email": settings.EMAIL_BACKEND,
            "tick": f"{settings.DUNNING_TICK_SECONDS} s", "var": str(var_dir)}


def commands(args, settings) -> dict[str, list[str]]:
    python = sys.executable
    if args.gunicorn:
        web = [python, "-m", "gunicorn", "config.wsgi", "-c", "python:config.gunicorn_conf",
               "--bind", f"{args.host}:{args.port}", "--workers", "2",
               "--access-logfile", "-"]
    else:
        web = [python, "manage.py", "runserver", f"{args.host}:{args.port}"]
    schedule = str(Path(settings.VAR_DIR) / "celerybeat-schedule")
    return {
        "web": web,
        "worker": [python, "-m", "celery", "-A", "config", "worker", "-l", "info", "--concurrency", "2"],
        "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "info", "-s", schedule],
    }


class Child:
    def __init__(self, name: str, command: list[str], env: dict[str, str], *, stop_group: bool) -> None:
        self.name = name
        # runserver's autoreloader runs the server in a child: stop the whole group. A Celery worker
        # must get the signal alone: it stops its pool itself (warm shutdown, running tasks finish).
        self.stop_group = stop_group
        # A session of its own: Ctrl-C reaches only us, and we stop each child (and what it
        # spawned, e.g. runserver's autoreloader) as a group, in order.
        self.process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE,  # noqa: S603
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                        text=True, bufsize=1, errors="replace")
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            say(self.name, line)

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        if self.stop_group:
            self.signal_group(signal.SIGTERM)
        else:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)


def stop_all(children: list[Child]) -> None:
    for child in reversed(children):  # beat first: no new ticks while the worker finishes
        if child.process.poll() is None:
            say("run_all", f"stopping {child.name} (pid {child.process.pid}) ...")
            child.stop()
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say("run_all", f"{child.name} did not stop in {STOP_TIMEOUT} s: killing it")
            child.signal_group(signal.SIGKILL)
            child.process.wait()
        child.signal_group(signal.SIGKILL)  # leftovers of its group, if any
    for child in children:
        child.reader.join(timeout=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--gunicorn", action="store_true", help="serve with gunicorn instead of runserver")
    args = parser.parse_args(argv)

    settings = django_settings()
    info = prepare(settings)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, _frame) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    children: list[Child] = []
    exit_code = 0
    try:
        for name, command in commands(args, settings).items():
            children.append(Child(name, command, env, stop_group=name == "web"))
        url = f"http://{args.host}:{args.port}/"
        for line in (
            "",
            f"Mahnwesen is starting: open {url}",
            "  log in as 'support' (superuser: also the automation switch in /admin/dunning/dunningautomation/)",
            "  or 'backoffice' (Back office group); seed_demo printed their passwords when it created them",
            "  (new ones: python manage.py seed_demo --reset-passwords).",
            f"  database: {info['database']} | broker: {info['broker']} | beat tick: {info['tick']}",
            f"  e-mail: {info['email']} (the console backend prints reminders in the worker output)",
            "  Ctrl-C stops web, worker and beat.",
            "",
        ):
            say("run_all", line)
        while not stop.wait(0.5):
            dead = [c for c in children if c.process.poll() is not None]
            if dead:
                for child in dead:
                    say("run_all", f"{child.name} exited with code {child.process.returncode}: stopping the others")
                exit_code = next((c.process.returncode for c in dead if c.process.returncode), 1)
                break
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans
        stop_all(children)
    if received:
        say("run_all", "stopped.")
        return 0
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
