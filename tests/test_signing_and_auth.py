from __future__ import annotations

import pytest

from bot.hailuo import AuthState, Conversation, InvalidAuthState, body_to_yy, yy
from tests.conftest import make_auth
from tests.standins.hailuo import expected_signature


def test_public_test_vector() -> None:
    digest = body_to_yy("1", "hello world", "0")
    path = "/v4/api/chat/msg?device_platform=web&biz_id=2&app_id=3001"
    assert yy(path, digest, 1_700_000_000_000) == "6893d64988ecf45b1de1808b91ae855b"


def test_line_breaks_do_not_change_the_signature() -> None:
    assert body_to_yy("1", "a\r\nb\nc\rd", "0") == body_to_yy("1", "abcd", "0")
    assert body_to_yy("1", "a b", "0") != body_to_yy("1", "ab", "0")


@pytest.mark.parametrize("text", ["plain", "с переносом\nстрок", "emoji 🙂 & *stars* (x)!"])
def test_signature_agrees_with_the_standin(text: str) -> None:
    auth = make_auth()
    fields = {"characterID": "1", "msgContent": text, "chatID": "12345"}
    ours = yy(auth.path_and_query, body_to_yy("1", text, "12345"), auth.timestamp)
    assert ours == expected_signature(auth.path_and_query, fields, str(auth.timestamp))


def test_auth_state_json_round_trip() -> None:
    auth = make_auth()
    again = AuthState.from_json(auth.to_json())
    assert again == auth
    assert again.headers["user-agent"].startswith("Mozilla/5.0")


def test_auth_state_repr_hides_secrets() -> None:
    auth = make_auth()
    for shown in (repr(auth), str(auth), f"{auth}"):
        assert auth.token not in shown
        assert "cookie-secret-value" not in shown
        assert auth.fingerprint in shown
        assert "sessionid" in shown


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"path_and_query": "/v4/api/chat/msg?a=1", "timestamp": 5}', "token"),
        ('{"token": "t", "path_and_query": "nope", "timestamp": 5}', "path_and_query"),
        ('{"token": "t", "path_and_query": "/v4/x?a=1", "timestamp": "soon"}', "timestamp"),
    ],
)
def test_bad_auth_json_names_the_problem(text: str, complaint: str) -> None:
    with pytest.raises(InvalidAuthState, match=complaint) as caught:
        AuthState.from_json(text)
    assert "secret" not in str(caught.value)


def test_conversation_belongs_to_its_token_and_upstream_only() -> None:
    auth = make_auth(token="first")
    conversation = Conversation(chat_id="77", token_fingerprint=auth.fingerprint)
    assert conversation.belongs_to(auth.fingerprint, "hailuo")
    assert not conversation.belongs_to(make_auth(token="second").fingerprint, "hailuo")
    assert not conversation.belongs_to(auth.fingerprint, "minimax-agent")
    empty = Conversation(chat_id="", token_fingerprint=auth.fingerprint)
    assert not empty.belongs_to(auth.fingerprint, "hailuo")
