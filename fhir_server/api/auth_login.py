"""The staff login page of `/auth/authorize`: one small HTML form, everything escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from starlette.responses import HTMLResponse

# No framing (clickjacking), no caching, no scripts: the form posts to itself.
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem}"
    "button{margin-top:1rem;padding:.5rem 1.2rem}.error{color:#a00}"
)


def _page(title: str, body: str, *, status: int) -> HTMLResponse:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def login_page(
    params: Mapping[str, str],
    *,
    client_id: str,
    scope: str,
    ask_patient: bool,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The sign-in form, carrying the authorization request in hidden fields."""
    hidden = "".join(
        f'<input type=hidden name="{escape(k)}" value="{escape(v)}">' for k, v in params.items()
    )
    patient = (
        "<label for=patient>Patient id</label><input id=patient name=patient required>"
        if ask_patient
        else ""
    )
    message = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    body = (
        f"<p>Application <b>{escape(client_id)}</b> asks for: <code>{escape(scope)}</code></p>"
        f"{message}<form method=post action=authorize>{hidden}"
        "<label for=username>User name</label>"
        "<input id=username name=username autocomplete=username required>"
        "<label for=password>Password</label>"
        "<input id=password name=password type=password autocomplete=current-password required>"
        f"{patient}<button type=submit>Sign in</button></form>"
    )
    return _page("MediCore sign-in", body, status=status)


def error_page(description: str, *, status: int = 400) -> HTMLResponse:
    """An authorization request that cannot be sent back to the client."""
    return _page("Cannot sign in", f"<p class=error>{escape(description)}</p>", status=status)


__all__ = ["error_page", "login_page"]
