"""newsletter: a self-hosted email newsletter and mailing-list manager."""

from __future__ import annotations

from typing import Any

from flask import Flask

from newsletter.config import configure, instance_path_from_env
from newsletter.extensions import init_extensions


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, commands. Wiring only.

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
    import_models()
    init_extensions(app)
    register_blueprints(app)
    register_cli(app)
    trust_proxies(app)
    return app


def import_models() -> None:
    """Import every model module so the metadata knows all tables."""
    from newsletter.audience import models as _audience  # noqa: F401
    from newsletter.auth import models as _auth  # noqa: F401
    from newsletter.content import models as _content  # noqa: F401
    from newsletter.delivery import models as _delivery  # noqa: F401
    from newsletter.delivery import transactional as _transactional  # noqa: F401


def trust_proxies(app: Flask) -> None:
    """Behind ``TRUSTED_PROXIES`` reverse proxies, take the client's address and scheme from
    their X-Forwarded-* headers (rate limits count visitors, not the proxy)."""
    hops = int(app.config["TRUSTED_PROXIES"])
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )


def register_blueprints(app: Flask) -> None:
    from newsletter.web import register

    register(app)


def register_cli(app: Flask) -> None:
    from newsletter.cli import register

    register(app)
