"""A Bot API stand-in on loopback that aiogram talks to over real HTTP.

It behaves like Telegram where it matters to this bot: long-polling getUpdates, message ids,
sendMessage / editMessageText / sendMessageDraft and friends, the 4096-character limit and entity
offsets counted in UTF-16, "message is not modified", "message to edit not found", blocked users,
and 429 with retry_after when a chat, a group or the whole bot goes over its rate.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

BOT_ID = 7_000_000_001
BOT_USERNAME = "hailuo_test_bot"
MESSAGE_LIMIT = 4096
ENTITY_TYPES = {
    "mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number", "bold",
    "italic", "underline", "strikethrough", "spoiler", "blockquote", "expandable_blockquote",
    "code", "pre", "text_link", "text_mention", "custom_emoji", "date_time",
}  # fmt: skip
PACED = {
    "sendMessage", "editMessageText", "editMessageReplyMarkup", "sendMessageDraft",
    "sendRichMessage", "sendRichMessageDraft",
}  # fmt: skip
# Rich messages (Bot API 10.1): per message.
RICH_LIMIT = 32_768
RICH_BLOCKS = 500
RICH_DEPTH = 16
RICH_COLUMNS = 20
_RICH_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_RICH_TAG = re.compile(r"<(/?)([a-z][a-z0-9-]*)[^>]*>")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class ApiError(Exception):
    def __init__(
        self, code: int, description: str, retry_after: int | None = None, reason: str = ""
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.reason = reason  # which limit, for 429s: chat, group, global or penalty


@dataclass
class Limits:
    """Telegram's limits as this stand-in enforces them."""

    chat_interval: float = 1.0  # at most one call per second per chat...
    chat_tolerance: float = 0.1  # ...measured with this much slack for timer jitter
    group_per_minute: int = 20
    global_per_second: int = 30


@dataclass
class Chat:
    id: int
    type: str
    title: str = ""
    is_forum: bool = False
    admins: set[int] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            data["first_name"] = self.title
        else:
            data["title"] = self.title
        if self.is_forum:
            data["is_forum"] = True
        return data


@dataclass
class User:
    id: int
    first_name: str
    language_code: str = "en"
    username: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }
        if self.username:
            data["username"] = self.username
        return data


@dataclass
class StoredMessage:
    chat_id: int
    message_id: int
    from_bot: bool
    text: str
    entities: list[dict[str, Any]]
    thread_id: int | None
    reply_markup: dict[str, Any] | None = None
    reply_to: int | None = None
    deleted: bool = False
    edits: int = 0
    rich: str = ""  # "markdown" or "html" for a rich message (its source is `text`)
    sent_at: float = field(default_factory=time.monotonic)
    updated_at: float = field(default_factory=time.monotonic)

    def as_dict(self, chat: Chat, sender: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": self.message_id,
            "date": int(time.time()),
            "chat": chat.as_dict(),
            "from": sender,
            "text": self.text,
        }
        if self.entities:
            data["entities"] = self.entities
        if self.thread_id is not None:
            data["message_thread_id"] = self.thread_id
            data["is_topic_message"] = True
        if self.reply_markup:
            data["reply_markup"] = self.reply_markup
        return data


@dataclass
class Call:
    at: float
    method: str
    params: dict[str, Any]
    status: int  # 200, or the error code returned
    reason: str = ""


class TelegramStandIn:
    def __init__(self, token: str, limits: Limits | None = None) -> None:
        self.token = token
        self.limits = limits or Limits()
        # Link hosts Telegram refuses although they look fine (it blocks some domains).
        self.refused_link_hosts: set[str] = set()
        # Rich messages: False plays an older Bot API server (no such methods); `refuse_rich`
        # answers every rich message with a 400, as for a construct Telegram does not take.
        self.rich_supported = True
        self.refuse_rich = False
        self.refuse_rich_containing: str | None = None  # refuse only rich content with this
        self.chats: dict[int, Chat] = {}
        self.users: dict[int, User] = {}
        self.messages: dict[tuple[int, int], StoredMessage] = {}
        self.drafts: dict[tuple[int, int], str] = {}  # what each draft shows now
        self.draft_log: list[tuple[float, int, int, str]] = []  # every draft frame ever sent
        self.calls: list[Call] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.callback_answers: list[dict[str, Any]] = []
        self.blocked: set[int] = set()
        self.photos: list[tuple[int, bytes]] = []
        self.polls = 0
        self._message_ids: dict[int, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._new_update = asyncio.Condition()
        self._chat_last: dict[int, float] = {}
        self._chat_penalty: dict[int, float] = {}
        self._group_stamps: dict[int, deque[float]] = defaultdict(deque)
        self._global_stamps: deque[float] = deque()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        # Webhook mode: what setWebhook registered, and the instances behind the load balancer
        # that the public URL leads to (updates go to them in turn, one at a time, in order).
        self.webhook: dict[str, str] | None = None
        self.backends: list[str] = []
        self.deliveries: list[tuple[int, str, int]] = []  # update id, backend, HTTP status
        self._delivery: asyncio.Task[None] | None = None

    # --- server -------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._delivery is not None:
            self._delivery.cancel()
            await asyncio.gather(self._delivery, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        params = await _params(request)
        now = time.monotonic()
        try:
            handler = getattr(self, f"api_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            if method in PACED:
                self._check_rate(int(params.get("chat_id", 0)), now)
            result = (
                await handler(params) if asyncio.iscoroutinefunction(handler) else handler(params)
            )
        except ApiError as error:
            self.calls.append(Call(now, method, params, error.code, error.reason))
            body: dict[str, Any] = {
                "ok": False,
                "error_code": error.code,
                "description": error.description,
            }
            if error.retry_after is not None:
                body["parameters"] = {"retry_after": error.retry_after}
            return web.json_response(body, status=error.code)
        self.calls.append(Call(now, method, params, 200))
        return web.json_response({"ok": True, "result": result})

    # --- rate limits ----------------------------------------------------------------------------

    def _check_rate(self, chat_id: int, now: float) -> None:
        limits = self.limits
        penalty = self._chat_penalty.get(chat_id, 0.0)
        if now < penalty:
            # Calling again before retry_after has passed extends nothing but is refused.
            raise ApiError(
                429, "Too Many Requests: retry after", math.ceil(penalty - now), "penalty"
            )
        last = self._chat_last.get(chat_id)
        if last is not None and now - last < limits.chat_interval - limits.chat_tolerance:
            self._refuse(chat_id, now, 1, "chat")
        if chat_id < 0:
            stamps = self._group_stamps[chat_id]
            while stamps and stamps[0] <= now - 60:
                stamps.popleft()
            if len(stamps) >= limits.group_per_minute:
                self._refuse(chat_id, now, math.ceil(stamps[0] + 60 - now), "group")
        while self._global_stamps and self._global_stamps[0] <= now - 1:
            self._global_stamps.popleft()
        if len(self._global_stamps) >= limits.global_per_second:
            self._refuse(chat_id, now, 1, "global")
        self._chat_last[chat_id] = now
        if chat_id < 0:
            self._group_stamps[chat_id].append(now)
        self._global_stamps.append(now)

    def _refuse(self, chat_id: int, now: float, retry_after: int, reason: str) -> None:
        retry_after = max(1, retry_after)
        self._chat_penalty[chat_id] = now + retry_after
        raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after, reason)

    @property
    def rate_limited(self) -> list[Call]:
        return [call for call in self.calls if call.status == 429]

    # --- methods ----------------------------------------------------------------------------------

    def api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Hailuo Test",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        return True

    def api_setWebhook(self, params: dict[str, Any]) -> bool:
        url = params.get("url", "")
        if not url.startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: an HTTPS URL must be provided")
        secret = params.get("secret_token", "")
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ApiError(
                400, "Bad Request: bad webhook: secret token contains unallowed characters"
            )
        self.webhook = {"url": url, "secret": secret}
        if self._delivery is None:
            self._delivery = asyncio.get_running_loop().create_task(self._deliver())
        return True

    def api_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        url = self.webhook["url"] if self.webhook else ""
        return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}

    async def _deliver(self) -> None:
        """Like Telegram with a load balancer in front of the bot: each update is posted to the
        next instance in turn with the secret header; an update that fails (refused
        connection, non-2xx) is tried on the next instance, and again later."""
        turn = itertools.count()
        async with aiohttp.ClientSession() as session:
            while True:
                async with self._new_update:
                    await self._new_update.wait_for(
                        lambda: bool(self._updates and self.webhook and self.backends)
                    )
                assert self.webhook is not None
                update = self._updates[0]
                path = urlsplit(self.webhook["url"]).path
                delivered = False
                for _ in range(len(self.backends)):
                    backend = self.backends[next(turn) % len(self.backends)]
                    try:
                        async with session.post(
                            backend + path,
                            json=update,
                            headers={"X-Telegram-Bot-Api-Secret-Token": self.webhook["secret"]},
                            timeout=aiohttp.ClientTimeout(total=60),
                        ) as response:
                            await response.read()
                            status = response.status
                    except (aiohttp.ClientError, TimeoutError):
                        status = 0
                    self.deliveries.append((int(update["update_id"]), backend, status))
                    if 200 <= status < 300:
                        delivered = True
                        break
                if delivered:
                    self._updates.remove(update)
                else:
                    await asyncio.sleep(0.2)

    def api_setMyCommands(self, params: dict[str, Any]) -> bool:
        scope = _json(params.get("scope")) or {"type": "default"}
        key = scope["type"] + (f":{scope['chat_id']}" if "chat_id" in scope else "")
        key += f":{params['language_code']}" if params.get("language_code") else ""
        self.commands[key] = _json(params["commands"])
        return True

    async def api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        self.polls += 1
        offset = int(params.get("offset", 0) or 0)
        timeout = float(params.get("timeout", 0) or 0)
        limit = int(params.get("limit", 100) or 100)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        async with self._new_update:
            if not self._updates and timeout:
                try:
                    async with asyncio.timeout(timeout):
                        await self._new_update.wait_for(lambda: bool(self._updates))
                except TimeoutError:
                    pass
        return self._updates[:limit]

    def api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._writable_chat(params)
        text, entities = self._validated_text(params)
        thread_id = self._thread(chat, params)
        reply = _json(params.get("reply_parameters"))
        reply_to = None
        if reply:
            reply_to = int(reply["message_id"])
            original = self.messages.get((chat.id, reply_to))
            if (original is None or original.deleted) and not reply.get(
                "allow_sending_without_reply"
            ):
                raise ApiError(400, "Bad Request: message to be replied not found")
        message = StoredMessage(
            chat_id=chat.id,
            message_id=next(self._message_ids[chat.id]),
            from_bot=True,
            text=text,
            entities=entities,
            thread_id=thread_id,
            reply_markup=_json(params.get("reply_markup")),
            reply_to=reply_to,
        )
        self.messages[(chat.id, message.message_id)] = message
        for key in [key for key in self.drafts if key[0] == chat.id]:
            self.drafts.pop(key)  # a sent message replaces the chat's drafts
        return message.as_dict(chat, self._bot_user())

    def api_sendRichMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        self._rich_method()
        chat = self._writable_chat(params)
        kind, source = self._validated_rich(params, draft=False)
        message = StoredMessage(
            chat_id=chat.id,
            message_id=next(self._message_ids[chat.id]),
            from_bot=True,
            text=source,
            entities=[],
            thread_id=self._thread(chat, params),
            reply_markup=_json(params.get("reply_markup")),
            reply_to=(_json(params.get("reply_parameters")) or {}).get("message_id"),
            rich=kind,
        )
        self.messages[(chat.id, message.message_id)] = message
        for key in [key for key in self.drafts if key[0] == chat.id]:
            self.drafts.pop(key)
        return message.as_dict(chat, self._bot_user())

    def api_sendRichMessageDraft(self, params: dict[str, Any]) -> bool:
        self._rich_method()
        chat = self._writable_chat(params)
        if chat.type != "private":
            raise ApiError(400, "Bad Request: drafts can be sent only to private chats")
        draft_id = int(params.get("draft_id", 0))
        if not draft_id:
            raise ApiError(400, "Bad Request: draft_id must be non-zero")
        _, source = self._validated_rich(params, draft=True)
        self.drafts[(chat.id, draft_id)] = source
        self.draft_log.append((time.monotonic(), chat.id, draft_id, source))
        return True

    def _rich_method(self) -> None:
        if not self.rich_supported:
            raise ApiError(404, "Not Found: method not found")

    def _validated_rich(self, params: dict[str, Any], *, draft: bool) -> tuple[str, str]:
        """The rules of a rich message as the documentation states them (one of html,
        markdown or blocks; 32 768 characters; 500 blocks; 16 levels; 20 columns; a thinking
        block only in drafts); unbalanced markup is refused, as a strict reading would."""
        if self.refuse_rich:
            raise ApiError(400, "Bad Request: RICH_VALIDATE_CTOR_NOT_ALLOWED")
        rich = _json(params.get("rich_message"))
        if not isinstance(rich, dict):
            raise ApiError(400, "Bad Request: rich_message is required")
        kinds = [kind for kind in ("html", "markdown", "blocks") if rich.get(kind)]
        if len(kinds) != 1:
            raise ApiError(400, "Bad Request: exactly one of html, markdown or blocks is required")
        kind = kinds[0]
        if kind == "blocks":
            raise ApiError(400, "Bad Request: blocks are not served by this stand-in")
        source = str(rich[kind])
        if self.refuse_rich_containing and self.refuse_rich_containing in source:
            raise ApiError(400, "Bad Request: RICH_VALIDATE_CTOR_NOT_ALLOWED")
        if len(source) > RICH_LIMIT:
            raise ApiError(400, "Bad Request: RICH_MESSAGE_TOO_LONG")
        if kind == "html":
            _check_rich_html(source, draft=draft)
        else:
            _check_rich_markdown(source)
        return kind, source

    def api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._writable_chat(params)
        message = self._editable(chat, params)
        if params.get("rich_message") is not None and self.rich_supported:
            kind, source = self._validated_rich(params, draft=False)
            markup = _json(params.get("reply_markup"))
            if (message.rich, message.text, message.reply_markup) == (kind, source, markup):
                raise ApiError(400, "Bad Request: message is not modified")
            message.rich, message.text, message.entities = kind, source, []
            message.reply_markup = markup
            message.edits += 1
            message.updated_at = time.monotonic()
            return message.as_dict(chat, self._bot_user())
        text, entities = self._validated_text(params)
        markup = _json(params.get("reply_markup"))
        message.rich = ""
        if (message.text, message.entities, message.reply_markup) == (text, entities, markup):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        message.text, message.entities, message.reply_markup = text, entities, markup
        message.edits += 1
        message.updated_at = time.monotonic()
        return message.as_dict(chat, self._bot_user())

    def api_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._writable_chat(params)
        message = self._editable(chat, params)
        markup = _json(params.get("reply_markup"))
        if markup == message.reply_markup:
            raise ApiError(400, "Bad Request: message is not modified")
        message.reply_markup = markup
        message.updated_at = time.monotonic()
        return message.as_dict(chat, self._bot_user())

    def api_sendMessageDraft(self, params: dict[str, Any]) -> bool:
        chat = self._writable_chat(params)
        if chat.type != "private":
            raise ApiError(400, "Bad Request: drafts can be sent only to private chats")
        draft_id = int(params.get("draft_id", 0))
        if not draft_id:
            raise ApiError(400, "Bad Request: draft_id must be non-zero")
        text = params.get("text", "")
        if utf16_len(text) > MESSAGE_LIMIT:
            raise ApiError(400, "Bad Request: text is too long")
        _check_entities(text, _json(params.get("entities")) or [], self.refused_link_hosts)
        self.drafts[(chat.id, draft_id)] = text
        self.draft_log.append((time.monotonic(), chat.id, draft_id, text))
        return True

    def api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._writable_chat(params)
        photo = params.get("photo")
        if isinstance(photo, str) and photo.startswith("attach://"):
            photo = params.get(photo.removeprefix("attach://"))
        if not isinstance(photo, bytes) or not photo:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        self.photos.append((chat.id, photo))
        message = StoredMessage(
            chat_id=chat.id,
            message_id=next(self._message_ids[chat.id]),
            from_bot=True,
            text="",
            entities=[],
            thread_id=self._thread(chat, params),
        )
        self.messages[(chat.id, message.message_id)] = message
        data = message.as_dict(chat, self._bot_user())
        data.pop("text")
        data["photo"] = [{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}]
        return data

    def api_sendChatAction(self, params: dict[str, Any]) -> bool:
        self._writable_chat(params)
        return True

    def api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        self.callback_answers.append(params)
        return True

    def api_deleteMessage(self, params: dict[str, Any]) -> bool:
        chat = self._writable_chat(params)
        message = self.messages.get((chat.id, int(params["message_id"])))
        if message is None or message.deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        message.deleted = True
        return True

    def api_getChatMember(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.chats[int(params["chat_id"])]
        user = self.users[int(params["user_id"])]
        status = "administrator" if user.id in chat.admins else "member"
        member: dict[str, Any] = {"status": status, "user": user.as_dict()}
        if status == "administrator":
            member.update(
                {
                    "can_be_edited": False,
                    "is_anonymous": False,
                    "can_manage_chat": True,
                    "can_delete_messages": True,
                    "can_manage_video_chats": True,
                    "can_restrict_members": True,
                    "can_promote_members": False,
                    "can_change_info": True,
                    "can_invite_users": True,
                    "can_post_stories": False,
                    "can_edit_stories": False,
                    "can_delete_stories": False,
                    "can_send_welcome_messages": False,
                }
            )
        return member

    # --- validation -----------------------------------------------------------------------------

    def _writable_chat(self, params: dict[str, Any]) -> Chat:
        chat = self.chats.get(int(params.get("chat_id", 0)))
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        if chat.id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _editable(self, chat: Chat, params: dict[str, Any]) -> StoredMessage:
        message = self.messages.get((chat.id, int(params.get("message_id", 0))))
        if message is None or message.deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        if not message.from_bot:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    def _validated_text(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        if params.get("parse_mode"):
            raise ApiError(400, "Bad Request: this bot must send entities, not parse_mode")
        text = params.get("text", "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > MESSAGE_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        entities = _json(params.get("entities")) or []
        _check_entities(text, entities, self.refused_link_hosts)
        return text, entities

    @staticmethod
    def _thread(chat: Chat, params: dict[str, Any]) -> int | None:
        thread = params.get("message_thread_id")
        if thread in (None, ""):
            return None
        if not chat.is_forum:
            raise ApiError(400, "Bad Request: message thread not found")
        return int(thread)

    @staticmethod
    def _bot_user() -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Hailuo Test", "username": BOT_USERNAME}

    # --- what users do ------------------------------------------------------------------------

    def add_user(self, user_id: int, name: str, language_code: str = "en") -> User:
        user = User(user_id, name, language_code)
        self.users[user_id] = user
        return user

    def add_private_chat(
        self, user_id: int, name: str = "", language_code: str = "en", *, topics: bool = False
    ) -> Chat:
        if user_id not in self.users:
            self.add_user(user_id, name or f"User {user_id}", language_code)
        chat = Chat(user_id, "private", self.users[user_id].first_name, is_forum=topics)
        self.chats[user_id] = chat
        return chat

    def add_group(
        self,
        chat_id: int,
        title: str = "Group",
        *,
        forum: bool = False,
        admins: set[int] | None = None,
    ) -> Chat:
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        chat = Chat(chat_id, kind, title, is_forum=forum, admins=set(admins or ()))
        self.chats[chat_id] = chat
        return chat

    def drop_pending_updates(self) -> None:
        """As if another bot process had already fetched them."""
        self._updates.clear()

    async def push_update(self, update: dict[str, Any]) -> int:
        update["update_id"] = next(self._update_ids)
        async with self._new_update:
            self._updates.append(update)
            self._new_update.notify_all()
        return int(update["update_id"])

    async def send_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """A user writes in a chat; returns the message id."""
        chat, user = self.chats[chat_id], self.users[user_id]
        message_id = next(self._message_ids[chat_id])
        stored = StoredMessage(chat_id, message_id, False, text, entities or [], thread_id)
        self.messages[(chat_id, message_id)] = stored
        data = stored.as_dict(chat, user.as_dict())
        if reply_to is not None:
            original = self.messages[(chat_id, reply_to)]
            sender = self._bot_user() if original.from_bot else self.users[user_id].as_dict()
            data["reply_to_message"] = original.as_dict(chat, sender)
        if extra:
            data.update(extra)
        if text.startswith("/"):
            command = text.split()[0]
            data["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command)},
                *(entities or []),
            ]
        await self.push_update({"message": data})
        return message_id

    async def send_photo(self, chat_id: int, user_id: int, caption: str | None = None) -> int:
        chat, user = self.chats[chat_id], self.users[user_id]
        message_id = next(self._message_ids[chat_id])
        data: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat.as_dict(),
            "from": user.as_dict(),
            "photo": [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}],
        }
        if caption:
            data["caption"] = caption
        await self.push_update({"message": data})
        return message_id

    async def press_button(self, chat_id: int, message_id: int, user_id: int, data: str) -> None:
        message = self.messages[(chat_id, message_id)]
        await self.push_update(
            {
                "callback_query": {
                    "id": str(next(self._update_ids)),
                    "from": self.users[user_id].as_dict(),
                    "chat_instance": str(chat_id),
                    "data": data,
                    "message": message.as_dict(self.chats[chat_id], self._bot_user()),
                }
            }
        )

    async def stop_draft(self, chat_id: int, draft_id: int) -> None:
        await self.push_update(
            {
                "stopped_message_generation": {
                    "chat": self.chats[chat_id].as_dict(),
                    "draft_id": draft_id,
                }
            }
        )

    def delete_by_user(self, chat_id: int, message_id: int) -> None:
        self.messages[(chat_id, message_id)].deleted = True

    async def migrate(self, old_chat_id: int, new_chat_id: int, user_id: int) -> None:
        old = self.chats[old_chat_id]
        self.add_group(new_chat_id, old.title, admins=old.admins)
        user = self.users[user_id].as_dict()
        for chat_id, key, value in (
            (old_chat_id, "migrate_to_chat_id", new_chat_id),
            (new_chat_id, "migrate_from_chat_id", old_chat_id),
        ):
            await self.push_update(
                {
                    "message": {
                        "message_id": next(self._message_ids[chat_id]),
                        "date": int(time.time()),
                        "chat": self.chats[chat_id].as_dict(),
                        "from": user,
                        key: value,
                    }
                }
            )

    # --- what tests look at -------------------------------------------------------------------

    def bot_messages(self, chat_id: int, thread_id: int | None = None) -> list[StoredMessage]:
        return [
            message
            for (chat, _), message in sorted(self.messages.items())
            if chat == chat_id
            and message.from_bot
            and not message.deleted
            and (thread_id is None or message.thread_id == thread_id)
        ]

    def draft_frames(self, chat_id: int) -> list[str]:
        return [text for _, chat, _, text in self.draft_log if chat == chat_id]

    def calls_of(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [
            call
            for call in self.calls
            if call.method == method
            and (chat_id is None or int(call.params.get("chat_id", 0)) == chat_id)
        ]

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition"
    ) -> Any:
        """Poll until `predicate()` is truthy; fail with `what` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.02)


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        data = await request.json()
        return {key: json.dumps(value) if isinstance(value, dict | list) else value
                for key, value in data.items()}  # fmt: skip
    form = await request.post()
    params: dict[str, Any] = {}
    for key, value in form.items():
        if isinstance(value, str):
            params[key] = value
        elif isinstance(value, web.FileField):
            params[key] = value.file.read()  # an upload
    params.update(dict(request.query.items()))
    return params


def _json(value: Any) -> Any:
    if value in (None, ""):
        return None
    return json.loads(value) if isinstance(value, str) else value


def _check_entities(
    text: str, entities: list[dict[str, Any]], refused_hosts: Collection[str] = ()
) -> None:
    length = utf16_len(text)
    for entity in entities:
        kind = entity.get("type")
        if kind not in ENTITY_TYPES:
            raise ApiError(400, f"Bad Request: can't parse entities: unknown type {kind!r}")
        offset, size = int(entity.get("offset", -1)), int(entity.get("length", 0))
        if offset < 0 or size <= 0 or offset + size > length:
            raise ApiError(
                400, f"Bad Request: can't parse entities: entity {kind} beyond the text end"
            )
        if kind == "text_link" and not entity.get("url"):
            raise ApiError(400, "Bad Request: can't parse entities: text_link without url")
        url = str(entity.get("url"))
        if kind == "text_link" and (
            not _link_accepted(url) or urlsplit(url).hostname in refused_hosts
        ):
            raise ApiError(400, f'Bad Request: entity URL "{url}" is invalid: Wrong HTTP URL')


def _link_accepted(url: str) -> bool:
    """Telegram's rule for text_link URLs, as observed: http(s) with a real host (a URL without
    a scheme is taken as http), tg:// and ton://; anchors, relative paths, javascript: refused."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        host = parts.hostname or ""
    except ValueError:
        return False
    if parts.scheme in ("tg", "ton"):
        return True
    if parts.scheme not in ("http", "https") or any(ch.isspace() for ch in url):
        return False
    return host == "localhost" or ("." in host and not host.endswith("."))


def _check_rich_markdown(source: str) -> None:
    """Refuse what a rich Markdown message may not hold (an independent reading of the rules:
    balanced fences, `$$` blocks and bold markers, the block, depth and column limits)."""
    blocks = 0
    fence: str | None = None
    math_open = False
    for line in source.split("\n"):
        match = _RICH_FENCE.match(line)
        if match is not None:
            marker = match.group(1)
            if fence is None:
                fence, blocks = marker, blocks + 1
            elif marker[0] == fence[0] and len(marker) >= len(fence) and not match.group(2).strip():
                fence = None
            continue
        if fence is not None:
            continue
        stripped = line.strip()
        if stripped.startswith("$$") and not (len(stripped) > 4 and stripped.endswith("$$")):
            math_open = not math_open
            blocks += 0 if not math_open else 1
            continue
        if math_open:
            continue
        if stripped:
            blocks += 1
        prefix = re.match(r"^[ \t>]*", line)
        quotes = prefix.group(0).count(">") if prefix else 0
        indent = (len(line) - len(line.lstrip(" "))) // 2  # list nesting by indentation
        if quotes + indent > RICH_DEPTH:
            raise ApiError(400, "Bad Request: RICH_MESSAGE_NESTING_TOO_DEEP")
        if stripped.startswith("|") and stripped.count("|") - 1 > RICH_COLUMNS:
            raise ApiError(400, "Bad Request: RICH_TABLE_TOO_WIDE")
        if _unescaped_count(stripped, "**") % 2:
            raise ApiError(400, "Bad Request: can't parse rich message: unclosed bold")
    if fence is not None or math_open:
        raise ApiError(400, "Bad Request: can't parse rich message: unclosed block")
    if blocks > RICH_BLOCKS:
        raise ApiError(400, "Bad Request: RICH_MESSAGE_TOO_MANY_BLOCKS")


def _unescaped_count(text: str, marker: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(marker), re.sub(r"`[^`]*`", "", text)))


def _check_rich_html(source: str, *, draft: bool) -> None:
    stack: list[str] = []
    for closing, tag in _RICH_TAG.findall(source):
        if tag == "tg-thinking" and not draft:
            raise ApiError(400, "Bad Request: thinking blocks are allowed only in drafts")
        if closing:
            if not stack or stack.pop() != tag:
                raise ApiError(400, "Bad Request: can't parse rich message: unbalanced tags")
        elif tag not in ("br", "hr"):
            stack.append(tag)
    if stack:
        raise ApiError(400, "Bad Request: can't parse rich message: unclosed tags")
