"""Camera URL redaction: every form of credential a vendor uses, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_daemon.redact import redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://u:p@h:554/x", "rtsp://u:***@h:554/x"),
        ("rtsp://u:p@h:554/s?x=1", "rtsp://u:***@h:554/s?x=1"),
        ("http://h/x", "http://h/x"),
        ("http://u%40x:p%3Aw@[::1]:8080/v", "http://u%40x:***@[::1]:8080/v"),
        # Reserved characters typed unencoded into the password (urllib splits these
        # at the first '@', '/' or '#' and leaked the rest).
        ("rtsp://admin:p@ss/w#rd@10.0.0.5:554/stream", "rtsp://admin:***@10.0.0.5:554/stream"),
        ("rtsp://admin:a:b:c@cam/s", "rtsp://admin:***@cam/s"),
        # A userinfo without ':' may be a token: hidden whole.
        ("https://ghp_T0KEN@cam/x", "https://***@cam/x"),
        # Credentials in the query, as many cameras and NVRs take them.
        ("http://cam/cgi?user=admin&pwd=hunter2&chn=1", "http://cam/cgi?user=admin&pwd=***&chn=1"),
        ("http://cam/v?token=abc", "http://cam/v?token=***"),
        ("http://cam/v?Api-Key=abc;Password=x", "http://cam/v?Api-Key=***;Password=***"),
        ("rtsp://a:b@[::1]:99/s?auth=abc#frag", "rtsp://a:***@[::1]:99/s?auth=***#frag"),
        # Unparseable: no parser error, nothing echoed that could be a secret.
        ("rtsp://[bad:secret@h", "rtsp://[bad:***@h"),
        ("rtsp://h:notaport/x?key=s3", "rtsp://h:notaport/x?key=***"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@given(
    user=st.text(
        st.characters(blacklist_characters=":@", blacklist_categories=("Cs",)), max_size=8
    ),
    password=st.text(st.characters(blacklist_categories=("Cs",)), min_size=6, max_size=20),
)
def test_no_password_survives_in_any_form(user: str, password: str) -> None:
    for url in (
        f"rtsp://{user}:{password}@cam.local:554/stream",
        f"http://cam.local/video.cgi?user={user}&pwd={password}",
    ):
        if "&" in password or "#" in password or ";" in password:
            continue  # would end the query value early: another parameter, by definition
        if password in f"{user} cam.local:554/stream http video.cgi":
            continue  # the same text is elsewhere in the URL (e.g. the user name)
        shown = redact_url(url)
        assert password not in shown.replace("***", "")


def test_config_errors_never_echo_a_password_the_parser_choked_on(tmp_path) -> None:
    from edge_daemon.config import ConfigError, load_config_text

    for url in ("rtsp://admin:hunter2@cam:notaport/s", "rtsp://admin:hun/ter2@cam/s?pwd=hunter2"):
        text = f"cameras:\n  - name: c\n    source: {{type: rtsp, url: '{url}'}}\n"
        with pytest.raises(ConfigError) as info:
            load_config_text(text, "c.yaml", base_dir=tmp_path)
        assert "hunter2" not in str(info.value)
        assert "ter2" not in str(info.value)
