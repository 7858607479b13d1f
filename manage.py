#!/usr/bin/env python
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
# Written by `make run` (DJANGO_DEBUG=true): the README's commands work in the same shell afterwards.
# Variables already in the environment win; MAHNWESEN_ENV_FILE names another file ("" reads none).
DEV_ENV_FILE = os.environ.get("MAHNWESEN_ENV_FILE", str(BASE_DIR / ".env.dev"))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from config.env import load_env_file

    try:
        if DEV_ENV_FILE:
            load_env_file(Path(DEV_ENV_FILE))
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # a setting is missing or malformed: one line, no traceback
        sys.stderr.write(f"manage.py: configuration error: {exc}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
