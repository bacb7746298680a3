"""The JSON API: `create_app(settings)` builds a Bottle app; bottle's default app is never used."""

from __future__ import annotations

import bottle

from cloutsy import crypto, replicas
from cloutsy.api import accounts, auth_routes, cors, endpoints, http, metrics, niches, ops
from cloutsy.api.hot_reads import HotReads
from cloutsy.config import Settings
from cloutsy.db import current
from cloutsy.services.limits import Limiter


class App(bottle.Bottle):
    """The bottle app, with the hottest reads answered first without bottle (hot_reads.py)."""

    hot: HotReads | None = None

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        hot = self.hot
        answer = hot(environ, start_response) if hot is not None else None
        return answer if answer is not None else self.wsgi(environ, start_response)


def create_app(settings: Settings) -> App:
    """A configured app; the database proxy must already be initialised (`init_database`)."""
    crypto.configure(settings)  # the PII keys of these settings, for every request
    app = App()
    app.config["json.disable"] = True  # routes return JSON text or bytes themselves
    app.config["cloutsy.settings"] = settings
    http.install(app)
    cors.install(app, settings.cors_origins)
    api = endpoints.Api(app, Limiter(settings.rate_limits, settings.secret_key))
    app.config["cloutsy.api"] = api
    ops.register(api, settings)
    niches.register(api, settings)
    accounts.register(api, settings)
    auth_routes.register(api, settings)
    current().query_observer = metrics.observe_query
    replicas.observer = metrics.observe_replica
    replicas.read_observer = metrics.observe_read
    if replicas.current is not None:
        for replica in replicas.current.replicas:
            replica.pool.query_observer = metrics.observe_query
            metrics.observe_replica(replica.name, replica.up, replica.lag_s)
    app.hot = HotReads(app, settings.cors_origins)
    return app
