"""Entry point for gunicorn: ``gunicorn wsgi:app``."""

import os
import sys

from newsletter import create_app
from newsletter.errors import ConfigError

# What the app writes (the database, the outbox) is for its owner alone.
os.umask(0o077)
try:
    app = create_app()
except ConfigError as error:
    # One line in the server's log, not a traceback: the operator fixes the setting.
    sys.exit(f"newsletter: configuration error: {error}")
