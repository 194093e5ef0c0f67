"""Entry point for gunicorn: ``gunicorn wsgi:app``."""

import sys

from newsletter import create_app
from newsletter.errors import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # One line in the server's log, not a traceback: the operator fixes the setting.
    sys.exit(f"newsletter: configuration error: {error}")
