"""The WSGI entry point gunicorn loads (`cloutsy.api.wsgi:app`): settings, logging, pool, app."""

from __future__ import annotations

from cloutsy.api import create_app
from cloutsy.config import load_settings, warn_if_insecure
from cloutsy.db import init_database
from cloutsy.logs import configure_logging

settings = load_settings()
configure_logging(settings)
warn_if_insecure(settings)
init_database(settings)
app = create_app(settings)
