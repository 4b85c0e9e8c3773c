"""The hub's HTTP face: the REST API (``/api/v1``, one nested blueprint per resource), the
Prometheus ``/metrics`` blueprint (which also carries ``/healthz``), JSON error handlers and
the OpenAPI document.

Route modules define their own blueprints and never import this package back.
"""

from flask import Blueprint

from cloud.errors import ApiError
from cloud.hub.http import (
    account_routes,
    capture_routes,
    champion_routes,
    dataset_routes,
    device_routes,
    health,
    model_routes,
    rollout_routes,
    sample_routes,
)
from cloud.hub.http.errors import register_error_handlers
from cloud.hub.http.metrics import metrics_bp

metrics_bp.register_blueprint(health.bp)  # /healthz: no auth, like /metrics

api = Blueprint("api", __name__, url_prefix="/api/v1")
for _routes in (model_routes, device_routes, rollout_routes, account_routes, sample_routes):
    api.register_blueprint(_routes.bp)
for _routes in (dataset_routes, champion_routes, capture_routes):
    api.register_blueprint(_routes.bp)

__all__ = ["ApiError", "api", "metrics_bp", "register_error_handlers"]
