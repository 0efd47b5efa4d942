"""`python -m bot` / `hailuo-bridge`: run the bot, or manage its database and Hailuo login."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import __version__
from bot.config import ConfigError, Settings, load_settings
from bot.hailuo import (
    AuthRejected,
    AuthState,
    Conversation,
    ConversationStarted,
    Finished,
    HailuoError,
    InvalidAuthState,
    SignatureRejected,
    TextDelta,
    TitleGenerated,
)
from bot.hailuo.login import BrowserLogin, LoginDone, LoginError, LoginLink, LoginStage
from bot.logs import register_secret, setup_logging
from bot.services.factories import hailuo_client
from bot.services.login_runner import login_options
from bot.services.logins import ActiveLogin, LoginService
from bot.storage.conversations import ConversationKey, ConversationStore
from bot.storage.database import Database
from bot.storage.migrations import (
    SchemaError,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    upgrade,
)

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
        prog="python -m bot", description="Hailuo Bridge: the Hailuo AI web chat in Telegram."
    )
    parser.add_argument("--version", action="version", version=f"hailuo-bridge {__version__}")
    parser.add_argument("--log-level", help="override LOG_LEVEL for this command")
    parser.set_defaults(handler=run_bot)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    commands.add_parser("run", help="run the Telegram bot (the default)").set_defaults(
        handler=run_bot
    )

    ask = commands.add_parser("ask", help="ask Hailuo from the terminal, streaming the answer")
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
        "login", help="log in to Hailuo in a browser (nodriver + Chromium) and store the login"
    ).set_defaults(handler=login_command)

    auth = commands.add_parser("auth", help="the stored Hailuo login").add_subparsers(
        metavar="ACTION", required=True
    )
    imp = auth.add_parser("import", help="store an auth JSON file ('-' for standard input)")
    imp.add_argument("file")
    imp.set_defaults(handler=auth_import)
    auth.add_parser(
        "export", help="print the stored login as JSON (contains secrets)"
    ).set_defaults(handler=auth_export)
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
    if args.auth is not None and not args.continue_:
        # An auth file alone needs no database at all.
        return await _stream_to_terminal(settings, None, None, _read_auth_file(args.auth), text)
    async with _database(settings) as database:
        login = None
        if args.auth is not None:
            auth = _read_auth_file(args.auth)
        else:
            login = await LoginService(database).current()
            if login is None:
                raise CommandError(
                    "no Hailuo login is stored: run `python -m bot auth import FILE` "
                    "(or `python -m bot login`), or pass --auth FILE",
                    EXIT_NO_LOGIN,
                )
            auth = login.auth
        return await _stream_to_terminal(settings, database, login, auth, text, args.continue_)


def _read_auth_file(path: Path) -> AuthState:
    try:
        auth = AuthState.from_json(path.read_bytes())
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    except InvalidAuthState as exc:
        raise CommandError(f"{path} is not a usable auth file: {exc}", EXIT_USAGE) from None
    register_secret(auth.token)
    return auth


async def _stream_to_terminal(
    settings: Settings,
    database: Database | None,
    login: ActiveLogin | None,
    auth: AuthState,
    text: str,
    continue_: bool = False,
) -> int:
    conversations = ConversationStore(database) if database and continue_ else None
    record = await conversations.get_or_create(TERMINAL_CHAT) if conversations else None
    conversation = (
        Conversation(
            chat_id=record.upstream_chat_id,
            token_fingerprint=record.token_fingerprint,
            character_id=record.character_id,
        )
        if record and record.upstream_chat_id
        else None
    )
    out = sys.stdout
    title = ""
    started: Conversation | None = None
    try:
        async with hailuo_client(settings) as client:
            async for event in client.stream(auth, text, conversation):
                if isinstance(event, TextDelta):
                    out.write(event.delta)
                    out.flush()
                elif isinstance(event, ConversationStarted):
                    started = event.conversation
                elif isinstance(event, TitleGenerated):
                    title = event.title
                elif isinstance(event, Finished):
                    out.write("\n")
    except (AuthRejected, SignatureRejected) as exc:
        if login is not None and database is not None:
            await LoginService(database).rejected(login)
        raise CommandError(
            f"{exc.message}. The login no longer works: log in again "
            "(`python -m bot login`, or `auth import` a fresh auth file)",
            EXIT_NO_LOGIN,
        ) from None
    except HailuoError as exc:
        if exc.partial_text:
            out.write("\n")
        raise CommandError(_describe_failure(exc)) from None
    if login is not None and database is not None:
        await LoginService(database).worked(login)
    if conversations is not None and record is not None and started is not None:
        await conversations.record_answer(
            record.id,
            upstream_chat_id=started.chat_id,
            token_fingerprint=started.token_fingerprint,
            title=title or None,
        )
    if title:
        print(f"[{title}]", file=sys.stderr)
    return EXIT_OK


def _describe_failure(exc: HailuoError) -> str:
    hints = {
        "rate_limited": "Hailuo is rate limiting: wait a little and ask again",
        "unavailable": "Hailuo cannot be reached right now: try again later",
        "interrupted": "the answer was cut off: ask again",
    }
    hint = hints.get(exc.kind)
    return f"{exc.message}" + (f" ({hint})" if hint else "")


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
    options = login_options(settings)
    async with _database(settings) as database:
        print(f"Logging in to {options.base_url} (Ctrl-C to stop)", file=sys.stderr)
        try:
            async for event in BrowserLogin(options).events():
                if isinstance(event, LoginLink):
                    print(f"Open {event.url} to see and use the browser", file=sys.stderr)
                elif isinstance(event, LoginStage):
                    print(_login_stage(event, options.base_url), file=sys.stderr)
                elif isinstance(event, LoginDone):
                    await LoginService(database).save(event.auth, source="terminal")
                    print(f"stored Hailuo login {event.auth.fingerprint}")
        except LoginError as exc:
            raise CommandError(f"login failed: {exc}") from None
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
            auth = AuthState.from_json(sys.stdin.buffer.read())
        except InvalidAuthState as exc:
            raise CommandError(
                f"standard input is not a usable auth JSON: {exc}", EXIT_USAGE
            ) from None
    else:
        auth = _read_auth_file(Path(args.file))
    async with _database(settings) as database:
        await LoginService(database).save(auth, source="import")
    print(f"stored Hailuo login {auth.fingerprint}")
    return EXIT_OK


async def auth_export(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as database:
        login = await LoginService(database).current()
    if login is None:
        raise CommandError("no Hailuo login is stored", EXIT_NO_LOGIN)
    if sys.stdout.isatty():
        print("warning: this is a secret; anyone holding it can use the login", file=sys.stderr)
    print(login.auth.to_json())
    return EXIT_OK


async def auth_show(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as database:
        service = LoginService(database)
        login, previous = await service.current(), await service.previous()
    if login is None:
        raise CommandError("no Hailuo login is stored", EXIT_NO_LOGIN)
    record = login.record
    print(f"login:         {record.fingerprint} (from {record.source or 'unknown'})")
    print(f"obtained:      {_ago(record.obtained_at)}")
    print(
        f"last success:  {_ago(record.last_success_at) if record.last_success_at else 'never yet'}"
    )
    if record.invalid_at:
        print(f"REJECTED:      {_ago(record.invalid_at)}: log in again")
    print(f"cookies:       {', '.join(sorted(login.auth.cookies)) or 'none'}")
    if previous is not None:
        print(f"fallback:      {previous.fingerprint} (kept until this login has worked)")
    return EXIT_OK


def _ago(moment: datetime) -> str:
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{moment:%Y-%m-%d %H:%M} UTC ({seconds // size} {unit} ago)"
    return f"{moment:%Y-%m-%d %H:%M} UTC ({max(seconds, 0)} s ago)"
