"""The fleet web page: login/logout, HTML shells for each page, and two card helpers.

Pages are thin shells; their data comes from the JSON API (``/api/v1``) which the page
scripts poll every two seconds with the session cookie, so everything shown is exactly
what API clients see and the page updates live without reloads. Writes go through the
API too, carrying the CSRF token from the page's ``<meta name="csrf-token">``.

The only data this blueprint serves itself is the model card, rendered to safe HTML
(:mod:`cloud.hub.web.markdown`), and the card's chart images read from the stored bundle.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from cloud.errors import ApiError
from cloud.hub.http.auth import (
    Principal,
    create_user,
    current_principal,
    login_session,
    logout_session,
    role_at_least,
    verify_login,
)
from cloud.hub.http.throttle import Throttled
from cloud.hub.registry import bundle_path
from cloud.hub.storage import ROLES, ModelVersion, User
from cloud.hub.web.bundle_files import read_bundle_image
from cloud.hub.web.markdown import render as render_markdown
from edge.errors import ConfigError

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

NAV = (
    ("overview", "Overview"),
    ("models", "Models"),
    ("rollouts", "Rollouts"),
    ("samples", "Samples"),
    ("datasets", "Datasets"),
)


def _hub() -> Any:
    from cloud.hub.context import hub

    return hub()


def _principal() -> Principal | None:
    try:
        return current_principal(_hub().request_session())
    except ApiError:  # a stale or bad Bearer header: treat the browser as logged out
        return None


def _safe_next(target: str | None) -> str:
    """Only same-site paths are valid redirect targets after login (no open redirect)."""
    if not target:
        return url_for("web.overview")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("web.overview")
    return target


def _page(template: str, active: str, needs: str = "viewer", **ctx: Any) -> Any:
    principal = _principal()
    if principal is None or principal.kind == "device":
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    if not role_at_least(principal.role, needs):
        abort(403)
    return render_template(
        template,
        active=active,
        nav=NAV,
        user=principal,
        is_admin=role_at_least(principal.role, "admin"),
        **ctx,
    )


@bp.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError) -> Any:
    """A stale login form (e.g. the session expired) gets the form again, not JSON."""
    if request.endpoint == "web.login_submit":
        return render_template("login.html", error="Your form expired, please try again."), 400
    return {"error": {"code": "csrf", "message": exc.description}}, 400


@bp.get("/login")
def login() -> Any:
    if _principal() is not None:
        return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=None, next=request.args.get("next", ""))


@bp.post("/login")
def login_submit() -> Any:
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    nxt = request.form.get("next", "")
    try:
        user = verify_login(_hub().request_session(), username, password) if username else None
    except Throttled as exc:  # the form again, with the wait, not the API's JSON
        page = render_template("login.html", error=exc.message, next=nxt, username=username)
        return page, 429, {"Retry-After": str(exc.retry_after)}
    if user is None:
        return (
            render_template(
                "login.html", error="Wrong user name or password.", next=nxt, username=username
            ),
            401,
        )
    login_session(user)
    return redirect(_safe_next(nxt))


@bp.post("/logout")
def logout() -> BaseResponse:
    logout_session()
    return redirect(url_for("web.login"))


@bp.get("/")
def overview() -> Any:
    return _page("overview.html", "overview")


@bp.get("/devices/<device_id>")
def device(device_id: str) -> Any:
    return _page("device.html", "overview", device_id=device_id)


@bp.get("/models")
def models() -> Any:
    return _page("models.html", "models")


@bp.get("/rollouts")
def rollouts() -> Any:
    return _page("rollouts.html", "rollouts")


@bp.get("/samples")
def samples() -> Any:
    return _page("samples.html", "samples")


@bp.get("/datasets")
def datasets() -> Any:
    return _page("datasets.html", "datasets", dataset_name="", dataset_version="")


@bp.get("/datasets/<name>")
@bp.get("/datasets/<name>/<int:version>")
def dataset(name: str, version: int | None = None) -> Any:
    """The list with one dataset's versions open (its newest, or ``version``)."""
    return _page("datasets.html", "datasets", dataset_name=name, dataset_version=version or "")


@bp.get("/rollouts/<rollout_id>")
def rollout(rollout_id: str) -> Any:
    return _page("rollout.html", "rollouts", rollout_id=rollout_id)


def _user_rows() -> list[User]:
    return list(_hub().request_session().scalars(select(User).order_by(User.username)))


@bp.get("/users")
def users() -> Any:
    return _page("users.html", "users", needs="admin", users=_user_rows(), roles=ROLES, error=None)


@bp.post("/users")
def users_create() -> Any:
    """Admins add accounts here (a plain CSRF-protected form; the CLI does the same)."""
    principal = _principal()
    if principal is None or not role_at_least(principal.role, "admin"):
        abort(403)
    db = _hub().request_session()
    try:
        create_user(
            db,
            request.form.get("username", "").strip(),
            request.form.get("password", ""),
            request.form.get("role", ""),
        )
    except ConfigError as exc:
        db.rollback()
        page = _page(
            "users.html", "users", "admin", users=_user_rows(), roles=ROLES, error=str(exc)
        )
        return page, 400
    db.commit()
    return redirect(url_for("web.users"))


def _model_version(name: str, version: int) -> ModelVersion:
    principal = _principal()
    if principal is None or principal.kind == "device":
        abort(401)
    row = (
        _hub()
        .request_session()
        .scalar(
            select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
        )
    )
    if row is None:
        abort(404)
    return row


@bp.get("/models/<name>/<int:version>/card")
def model_card(name: str, version: int) -> Response:
    """The version's model card as a safe HTML fragment; images point at :func:`model_file`."""
    row = _model_version(name, version)

    def resolve(url: str) -> str | None:
        if url.startswith(("http://", "https://", "#")):
            return url
        member = url.removeprefix("./")
        if member.startswith("charts/") and member.lower().endswith(".png"):
            return url_for("web.model_file", name=name, version=version, member=member)
        return None

    body = render_markdown(row.card or "*This bundle has no model card.*", resolve)
    return Response(body, mimetype="text/html", headers={"Cache-Control": "no-store"})


@bp.get("/models/<name>/<int:version>/files/<path:member>")
def model_file(name: str, version: int, member: str) -> Response:
    """A chart PNG out of the stored bundle (only ``charts/*.png`` members are served)."""
    row = _model_version(name, version)
    data = read_bundle_image(bundle_path(_hub().config, row), member)
    if data is None:
        abort(404)
    return Response(
        data,
        mimetype="image/png",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
