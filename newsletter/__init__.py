"""newsletter: a self-hosted email newsletter and mailing-list manager."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from newsletter import broker, commands, tasks, web

# Every model module, so the metadata (and Alembic) knows every table.
from newsletter.audience import models as _audience_models  # noqa: F401
from newsletter.audience import privacy_models as _privacy_models  # noqa: F401
from newsletter.audience.segments import models as _segment_models  # noqa: F401
from newsletter.auth import models as _auth_models  # noqa: F401
from newsletter.config import configure, instance_path_from_env
from newsletter.content import media as _media_models  # noqa: F401
from newsletter.content import models as _content_models  # noqa: F401
from newsletter.delivery import models as _delivery_models  # noqa: F401
from newsletter.delivery import transactional as _transactional_models  # noqa: F401
from newsletter.delivery.analytics import models as _analytics_models  # noqa: F401
from newsletter.delivery.bounces import models as _bounce_models  # noqa: F401
from newsletter.delivery.bounces import settings as _bounce_settings  # noqa: F401
from newsletter.delivery.webhooks import models as _webhook_models  # noqa: F401
from newsletter.extensions import FACTORY_KEY, init_extensions
from newsletter.ops import logs


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, extensions, queue, blueprints, commands. Wiring only.

    :raises ConfigError: a setting that cannot work.
    """
    instance_path = (test_config or {}).get("INSTANCE_PATH") or instance_path_from_env()
    app = Flask(
        __name__,
        instance_path=instance_path,
        instance_relative_config=True,
        template_folder="../templates",
    )
    configure(app, test_config)
    init_extensions(app)
    broker.init_app(app, tasks.ACTORS)
    web.register(app)
    logs.init_app(app)
    commands.register(app)
    trust_proxies(app)
    app.extensions[FACTORY_KEY] = create_app
    return app


def trust_proxies(app: Flask) -> None:
    """Behind ``TRUSTED_PROXIES`` reverse proxies, take the client's address and scheme from
    their X-Forwarded-* headers (rate limits count visitors, not the proxy)."""
    hops = int(app.config["TRUSTED_PROXIES"])
    if hops > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )
