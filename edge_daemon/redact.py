"""Hide the secrets in camera URLs before they reach a log, an error or an MQTT topic.

Camera vendors put credentials in many places, and users paste them unencoded:

* userinfo: ``rtsp://admin:p@ss/w#rd@10.0.0.5/stream`` (reserved characters in the
  password, which ``urllib.parse`` splits in the wrong place or refuses);
* query parameters: ``?user=admin&pwd=...``, ``?token=...``, ``?key=...``, ``?auth=...``;
* anything unparseable, whose parser error would echo the whole URL.

So this does not rely on a URL parser: everything between ``scheme://`` and the *last*
``@`` that a host name follows is userinfo (a path or query ending in ``@host`` is
over-redacted, which is safe), only the user name before its first ``:`` is kept (a
userinfo without ``:`` may be a token and is hidden whole), and the value of every query
parameter whose name looks like a secret becomes ``***``. The function never raises.
"""

from __future__ import annotations

import re

MASK = "***"

#: Query parameter names (case-insensitive, ignoring ``-``/``_``) whose values are
#: secrets in the URLs of common cameras and NVRs.
SECRET_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "pw",
        "psw",
        "token",
        "accesstoken",
        "authtoken",
        "key",
        "apikey",
        "secret",
        "auth",
        "authorization",
        "sig",
        "signature",
        "credential",
        "credentials",
        "session",
        "sessionid",
    }
)

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PARAM = re.compile(r"([?&;])([^=&;#]*)=([^&;#]*)")


#: What follows the userinfo's '@': a host (name, IPv4 or [IPv6]), an optional port (even
#: a malformed one), then
#: the path, query, fragment or the end.
_AFTER_USERINFO = re.compile(r"(\[[^\]]*\]|[A-Za-z0-9._~%-]+)(:[^/?#@]*)?(?=[/?#]|$)")


def _userinfo_end(rest: str) -> int:
    """Index of the '@' that ends the userinfo in ``rest`` (after ``scheme://``), or -1.

    The last '@' that a host follows: a password may hold '@', '/', '?' or '#' typed
    unencoded, and cutting at the first of them (as URL parsers do) leaked the rest.
    """
    at = rest.rfind("@")
    while at >= 0:
        if _AFTER_USERINFO.match(rest, at + 1):
            return at
        at = rest.rfind("@", 0, at)
    return -1


def is_secret_param(name: str) -> bool:
    """Whether a query parameter of this name carries a secret (``pwd``, ``Api-Key``...)."""
    return re.sub(r"[-_]", "", name).lower() in SECRET_PARAMS


def redact_url(url: str) -> str:
    """``url`` with passwords and secret query values replaced by ``***``."""
    text = str(url)
    m = _SCHEME.match(text)
    head, rest = (m.group(0), text[m.end() :]) if m else ("", text)
    at = _userinfo_end(rest) if m else -1
    if at >= 0:
        userinfo = rest[:at]
        user, sep, _ = userinfo.partition(":")
        # Without a ':' the whole userinfo may be a token (https://TOKEN@host): hide it.
        rest = (f"{user}:{MASK}" if sep else MASK) + rest[at:]
    rest = _PARAM.sub(
        lambda p: f"{p.group(1)}{p.group(2)}={MASK}" if is_secret_param(p.group(2)) else p.group(0),
        rest,
    )
    return head + rest
