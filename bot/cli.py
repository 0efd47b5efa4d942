"""`python -m bot` / `hailuo-bridge`: run the bot, or manage its database and upstream login."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import __version__
from bot.config import ConfigError, Settings, load_settings
from bot.logs import register_secret, setup_logging
from bot.services.credentials import parse_credentials_json
from bot.services.doctor import Doctor
from bot.services.factories import browser_login, build_upstream, login_source
from bot.services.logins import LoginService, protect
from bot.services.upstreams import LoginSource
from bot.storage.conversations import ConversationKey, ConversationStore
from bot.storage.database import Database
from bot.storage.history import HistoryStore, NewTurn
from bot.storage.migrations import (
    SchemaError,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    upgrade,
)
from bot.upstream import (
    AuthRejected,
    Conversation,
    ConversationStarted,
    Credentials,
    Finished,
    InvalidCredentials,
    ReasoningDelta,
    SignatureRejected,
    TextDelta,
    TitleGenerated,
    Turn,
    UpstreamFailure,
)
from bot.upstream.browser import LoginDone, LoginError, LoginLink, LoginStage

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_LOGIN, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
TERMINAL_CHAT = ConversationKey(chat_id=0)  # the `ask --continue` conversation


class CommandError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(args.log_level or _quiet_level(args, settings))
        for secret in settings.secret_values():
            register_secret(secret)
        handler: Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]] = args.handler
        return asyncio.run(handler(args, settings))
    except (ConfigError, SchemaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _quiet_level(args: argparse.Namespace, settings: Settings) -> str:
    """Terminal commands keep stdout for their answer and stderr for what matters."""
    return settings.log_level if args.handler is run_bot else "WARNING"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Hailuo Bridge: MiniMax's chat (MiniMax Agent, Hailuo) in Telegram.",
    )
    parser.add_argument("--version", action="version", version=f"hailuo-bridge {__version__}")
    parser.add_argument("--log-level", help="override LOG_LEVEL for this command")
    parser.set_defaults(handler=run_bot)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    commands.add_parser("run", help="run the Telegram bot (the default)").set_defaults(
        handler=run_bot
    )

    ask = commands.add_parser(
        "ask", help="ask the upstream from the terminal, streaming the answer"
    )
    ask.add_argument("text", help="the question; '-' reads it from standard input")
    ask.add_argument("--auth", type=Path, help="an auth JSON file instead of the stored login")
    ask.add_argument(
        "--continue",
        dest="continue_",
        action="store_true",
        help="continue the terminal conversation instead of starting a new one",
    )
    ask.set_defaults(handler=ask_command)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        metavar="ACTION", required=True
    )
    db.add_parser("upgrade", help="apply pending migrations").set_defaults(handler=db_upgrade)
    db.add_parser("current", help="show the schema revision").set_defaults(handler=db_current)
    down = db.add_parser("downgrade", help="revert to a revision ('base' empties the database)")
    down.add_argument("revision")
    down.set_defaults(handler=db_downgrade)

    commands.add_parser(
        "login", help="log in to the upstream in a browser (nodriver + Chromium) and store it"
    ).set_defaults(handler=login_command)

    doctor = commands.add_parser(
        "doctor", help="check the upstream end to end: settings, login, probe, a question"
    )
    doctor.add_argument("--no-ask", action="store_true", help="skip the one-word question")
    doctor.set_defaults(handler=doctor_command)

    auth = commands.add_parser("auth", help="the stored upstream login").add_subparsers(
        metavar="ACTION", required=True
    )
    imp = auth.add_parser("import", help="store an auth JSON file ('-' for standard input)")
    imp.add_argument("file")
    imp.set_defaults(handler=auth_import)
    export = auth.add_parser("export", help="print the stored login as JSON (contains secrets)")
    export.add_argument(
        "--output", type=Path, help="write it to this file (created owner-only, mode 0600)"
    )
    export.set_defaults(handler=auth_export)
    auth.add_parser("show", help="describe the stored login without secrets").set_defaults(
        handler=auth_show
    )
    return parser


@asynccontextmanager
async def _database(settings: Settings, *, ready: bool = True) -> AsyncIterator[Database]:
    """The database for one command; `ready` brings the schema up to date (or refuses)."""
    database = Database(settings.database_url)
    try:
        if ready:
            await ensure_schema(database, auto_migrate=settings.auto_migrate)
        yield database
    finally:
        await database.close()


# --- run -----------------------------------------------------------------------------------------


async def run_bot(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_bot_token()
    from bot.app import run

    return await run(settings)


# --- ask -----------------------------------------------------------------------------------------


async def ask_command(args: argparse.Namespace, settings: Settings) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise CommandError("nothing to ask: the question is empty", EXIT_USAGE)
    if settings.upstream == "minimax-api":
        settings.require_upstream_settings()  # the key comes from the settings
    if args.auth is not None and not args.continue_:
        # An auth file alone needs no database at all.
        return await _stream_to_terminal(settings, None, None, _read_auth_file(args.auth), text)
    if settings.upstream == "minimax-api" and args.auth is None and not args.continue_:
        logins = login_source(settings, None, settings.upstream)
        login = await logins.current()
        assert login is not None
        return await _stream_to_terminal(settings, None, logins, login.auth, text)
    async with _database(settings) as database:
        source: LoginSource | None = None
        if args.auth is not None:
            auth = _read_auth_file(args.auth)
        else:
            source = login_source(settings, database, settings.upstream)
            login = await source.current()
            if login is None:
                raise CommandError(
                    f"no {settings.upstream} login is stored: run `python -m bot auth import "
                    "FILE` (or `python -m bot login`), or pass --auth FILE",
                    EXIT_NO_LOGIN,
                )
            auth = login.auth
        return await _stream_to_terminal(settings, database, source, auth, text, args.continue_)


def _read_auth_file(path: Path) -> Credentials:
    try:
        auth = parse_credentials_json(path.read_bytes())
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    except InvalidCredentials as exc:
        raise CommandError(f"{path} is not a usable auth file: {exc}", EXIT_USAGE) from None
    protect(auth)
    return auth


async def _stream_to_terminal(
    settings: Settings,
    database: Database | None,
    logins: LoginSource | None,
    auth: Credentials,
    text: str,
    continue_: bool = False,
) -> int:
    """The answer on stdout (reasoning on stderr); `--continue` goes on with the terminal's
    conversation: the upstream's, or the stored history for an upstream that keeps none."""
    login = await logins.current() if logins is not None else None
    conversations = ConversationStore(database) if database and continue_ else None
    record = await conversations.get_or_create(TERMINAL_CHAT) if conversations else None
    conversation = (
        Conversation(
            chat_id=record.upstream_chat_id,
            token_fingerprint=record.token_fingerprint,
            character_id=record.character_id,
            upstream=record.upstream or "hailuo",
        )
        if record and record.upstream_chat_id
        else None
    )
    out = sys.stdout
    title = ""
    answer = ""
    started: Conversation | None = None
    client = build_upstream(settings)
    history: list[Turn] = []
    if database is not None and record is not None and not client.keeps_history:
        stored = await HistoryStore(database).recent(record.id, settings.history_max_chars)
        history = [Turn(turn.question, turn.answer) for turn in stored]
    try:
        events = client.stream(auth, text, conversation, history=history)
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, TextDelta):
                    answer = event.text
                    out.write(event.delta)
                    out.flush()
                elif isinstance(event, ReasoningDelta):
                    sys.stderr.write(event.delta)  # stdout keeps only the answer
                    sys.stderr.flush()
                elif isinstance(event, ConversationStarted):
                    started = event.conversation
                elif isinstance(event, TitleGenerated):
                    title = event.title
                elif isinstance(event, Finished):
                    out.write("\n")
    except (AuthRejected, SignatureRejected) as exc:
        if login is not None and logins is not None:
            await logins.rejected(login)
        advice = (
            "The API key was refused: check MINIMAX_API_KEY (and MINIMAX_API_BASE_URL)"
            if settings.upstream == "minimax-api" and logins is not None
            else "The login no longer works: log in again "
            "(`python -m bot login`, or `auth import` a fresh auth file)"
        )
        raise CommandError(f"{exc.message}. {advice}", EXIT_NO_LOGIN) from None
    except UpstreamFailure as exc:
        if exc.partial_text:
            out.write("\n")
        raise CommandError(_describe_failure(exc)) from None
    finally:
        await client.close()
    if login is not None and logins is not None:
        await logins.worked(login)
    if database is not None and record is not None and answer.strip():
        await HistoryStore(database).add(record.id, NewTurn(text, answer, client.name))
    if conversations is not None and record is not None and started is not None:
        await conversations.record_answer(
            record.id,
            upstream_chat_id=started.chat_id,
            token_fingerprint=started.token_fingerprint,
            title=title or None,
            upstream=client.name,
        )
    if title:
        print(f"[{title}]", file=sys.stderr)
    return EXIT_OK


def _describe_failure(exc: UpstreamFailure) -> str:
    hints = {
        "rate_limited": "rate limited or out of quota: wait a little and ask again",
        "unavailable": "the upstream cannot be reached right now: try again later",
        "interrupted": "the answer was cut off: ask again",
        "protocol": "the upstream's web protocol seems to have changed: see `python -m bot "
        "doctor` and consider another UPSTREAM",
    }
    hint = hints.get(exc.kind)
    return f"{exc.message}" + (f" ({hint})" if hint else "")


# --- doctor --------------------------------------------------------------------------------------


async def doctor_command(args: argparse.Namespace, settings: Settings) -> int:
    failed = False
    async with _database(settings) as database:
        async for step in Doctor(settings, database).steps(ask=not args.no_ask):
            print(f"{'ok  ' if step.ok else 'FAIL'}  {step.name}: {step.detail}")
            failed = failed or not step.ok
    return EXIT_FAILED if failed else EXIT_OK


# --- db ------------------------------------------------------------------------------------------


async def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    database = Database(settings.database_url)
    try:
        await upgrade(database)
        print(
            f"database ({database.engine_name}) is at revision {await current_revision(database)}"
        )
    finally:
        await database.close()
    return EXIT_OK


async def db_current(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings, ready=False) as database:
        current = await current_revision(database)
        head = head_revision()
        state = "up to date" if current == head else f"this code expects {head}"
        print(f"database ({database.engine_name}) revision: {current or 'empty'} ({state})")
    return EXIT_OK


async def db_downgrade(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings, ready=False) as database:
        await downgrade(database, args.revision)
        print(f"database is at revision {await current_revision(database) or 'empty'}")
    return EXIT_OK


# --- login -------------------------------------------------------------------------------------


async def login_command(args: argparse.Namespace, settings: Settings) -> int:
    upstream = build_upstream(settings)
    login = browser_login(settings, upstream)
    site = login.options.base_url
    async with _database(settings) as database:
        print(f"Logging in to {site} (Ctrl-C to stop)", file=sys.stderr)
        try:
            async for event in login.events():
                if isinstance(event, LoginLink):
                    print(f"Open {event.url} to see and use the browser", file=sys.stderr)
                elif isinstance(event, LoginStage):
                    print(_login_stage(event, site), file=sys.stderr)
                elif isinstance(event, LoginDone):
                    service = LoginService(database, settings.upstream)
                    await service.save(event.auth, source="terminal")
                    print(f"stored {event.auth.UPSTREAM} login {event.auth.fingerprint}")
        except LoginError as exc:
            raise CommandError(f"login failed: {exc}") from None
        finally:
            await upstream.close()
    return EXIT_OK


def _login_stage(stage: LoginStage, site: str) -> str:
    if stage.stage == "starting":
        return "starting the browser…"
    if stage.stage == "opened":
        return f"the browser shows {site}: log in there (headless? set BROWSER_HEADLESS=false)"
    left = int(stage.seconds_left)
    return f"waiting for the login… {left // 60}:{left % 60:02d} left"


# --- auth ----------------------------------------------------------------------------------------


async def auth_import(args: argparse.Namespace, settings: Settings) -> int:
    if args.file == "-":
        try:
            auth = parse_credentials_json(sys.stdin.buffer.read())
        except InvalidCredentials as exc:
            raise CommandError(
                f"standard input is not a usable auth JSON: {exc}", EXIT_USAGE
            ) from None
        protect(auth)
    else:
        auth = _read_auth_file(Path(args.file))
    async with _database(settings) as database:
        await LoginService(database, settings.upstream).save(auth, source="import")
    print(f"stored {auth.UPSTREAM} login {auth.fingerprint}")
    if settings.upstream != auth.UPSTREAM:
        print(
            f"note: the bot uses UPSTREAM={settings.upstream}; this {auth.UPSTREAM} login is "
            f"used once UPSTREAM={auth.UPSTREAM}",
            file=sys.stderr,
        )
    return EXIT_OK


async def auth_export(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as database:
        login = await LoginService(database, settings.upstream).current()
    if login is None:
        raise CommandError(f"no {settings.upstream} login is stored", EXIT_NO_LOGIN)
    text = json.dumps(login.auth.to_storage(), indent=2, ensure_ascii=False) + "\n"
    if args.output is not None:
        _write_private(args.output, text)
        print(f"wrote the {settings.upstream} login to {args.output} (mode 0600)", file=sys.stderr)
        return EXIT_OK
    if sys.stdout.isatty():
        print("warning: this is a secret; anyone holding it can use the login", file=sys.stderr)
    sys.stdout.write(text)
    return EXIT_OK


def _write_private(path: Path, text: str) -> None:
    """Owner-only from the first byte: created 0600 (an existing file is narrowed first)."""
    try:
        if path.exists():
            path.chmod(0o600)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}", EXIT_USAGE) from None


async def auth_show(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as database:
        service = LoginService(database, settings.upstream)
        login, previous = await service.current(), await service.previous()
    if login is None:
        raise CommandError(f"no {settings.upstream} login is stored", EXIT_NO_LOGIN)
    record = login.record
    print(f"upstream:      {login.auth.UPSTREAM}")
    print(f"login:         {record.fingerprint} (from {record.source or 'unknown'})")
    print(f"obtained:      {_ago(record.obtained_at)}")
    print(
        f"last success:  {_ago(record.last_success_at) if record.last_success_at else 'never yet'}"
    )
    if record.invalid_at:
        print(f"REJECTED:      {_ago(record.invalid_at)}: log in again")
    expires = login.auth.expires_at
    if expires is not None:
        print(f"token expires: {expires:%Y-%m-%d %H:%M} UTC")
    cookies = getattr(login.auth, "cookies", {})
    print(f"cookies:       {', '.join(sorted(cookies)) or 'none'}")
    if previous is not None:
        print(f"fallback:      {previous.fingerprint} (kept until this login has worked)")
    return EXIT_OK


def _ago(moment: datetime) -> str:
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{moment:%Y-%m-%d %H:%M} UTC ({seconds // size} {unit} ago)"
    return f"{moment:%Y-%m-%d %H:%M} UTC ({max(seconds, 0)} s ago)"
