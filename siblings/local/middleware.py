"""Stack several WSGI middlewares into the one ``LocalAwsServer`` accepts."""

from __future__ import annotations

from siblings.local.server import Middleware, WsgiApp


def compose(*middlewares: Middleware | None) -> Middleware:
    """One middleware applying ``middlewares`` outermost first; ``None`` entries are skipped.

    ``compose(recorder.wrap, quota.wrap, runtime.wrap)``: every request is counted, then
    checked against quotas, and only admitted Invokes reach the runtime.
    """
    layers = [layer for layer in middlewares if layer is not None]

    def wrap(app: WsgiApp) -> WsgiApp:
        for layer in reversed(layers):
            app = layer(app)
        return app

    return wrap
