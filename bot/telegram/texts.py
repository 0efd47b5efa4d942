"""Every sentence the bot says in Telegram, in one place."""

from __future__ import annotations

HELP = (
    "I bring the Hailuo AI chat to Telegram.\n\n"
    "In a private chat, just write to me: every message is a question, and I remember the "
    "conversation (each topic of this chat has its own).\n\n"
    "In groups, ask me with /ask <question>, reply to one of my messages, or mention {mention}. "
    "A group shares one conversation per topic; a group admin can give each member their own "
    "with /context personal (and back with /context shared).\n\n"
    "Commands:\n"
    "/new — start a fresh conversation\n"
    "/stop — stop the answer being written\n"
    "/title — the conversation's title\n"
    "/help — this text\n\n"
    "Note for group admins: with Telegram's privacy mode on (the default), I only see commands, "
    "replies to my messages and — if I am an admin — mentions. Make me an admin or turn privacy "
    "mode off in @BotFather for mentions to work."
)
START = (
    "Hello! Ask me anything: I answer with Hailuo AI.\n\nSend /help to see how I work in groups."
)
ASK_USAGE = "Write your question after the command, e.g. /ask What is the tallest mountain?"
TEXT_ONLY = "I can only read text for now — please send your question as a message."
TOO_LONG = "That message is too long for me ({length} characters; the limit is {limit}). Please shorten it."
RATE_LIMITED = "You're asking faster than I can keep up — please wait a minute and try again."
NOT_ALLOWED = "Sorry, this bot is private."
QUEUED = "⏳ Queued: I'll answer this right after the {position} question(s) before it."
NEW_CONVERSATION = "🆕 Started a fresh conversation. The previous one is kept."
NOTHING_TO_RESET = "There is no conversation yet — just ask."
NOTHING_TO_STOP = "Nothing is being written right now."
STOPPING = "⏹ Stopping…"
TITLE = "📝 {title}"
NO_TITLE = "This conversation has no title yet."
CONTEXT_USAGE = "Use /context shared (one conversation for the group) or /context personal (one per member). Now: {mode}."
CONTEXT_SET = "Done: this group now uses {mode} context."
CONTEXT_ADMINS_ONLY = "Only group admins can change this."
CONTEXT_GROUPS_ONLY = "This setting is for groups."
STOP_BUTTON = "⏹ Stop"
STOP_NOT_YOURS = "Only the person who asked (or a group admin) can stop this answer."
STOP_DONE = "Stopped."
STOP_GONE = "This answer is already finished."
RESTARTING = "I'm restarting right now — please send that again in a minute."

NOTE_STOPPED = "⏹ Stopped."
NOTE_INTERRUPTED = "⚠️ The answer was interrupted — please send your question again."
NOTE_RESTART = "⚠️ Interrupted by a restart — please send your question again."
NOTE_EMPTY = "(Hailuo sent an empty answer.)"

ERROR_NO_LOGIN = (
    "The bot isn't logged in to Hailuo right now. An admin has been told; please try again later."
)
ERROR_LOGIN_EXPIRED = "The bot's Hailuo login has expired, so I can't answer. An admin needs to log in again — they have been told."
ERROR_UPSTREAM_BUSY = "Hailuo is rate limiting us right now. Please try again in {seconds} seconds."
ERROR_UPSTREAM_DOWN = "Hailuo can't be reached right now. Please try again in a minute."
ERROR_UPSTREAM = "Hailuo couldn't answer that ({reason}). Try rephrasing, or /new to start over."
ERROR_INTERNAL = "Something went wrong on my side. Please try again."

ADMIN_LOGIN_REJECTED = (
    "⚠️ Hailuo rejected the bot's login ({fingerprint}): users can't get answers. "
    "Send /login to log in again (or `python -m bot auth import` on the server)."
)
ADMIN_NO_LOGIN = (
    "⚠️ Someone asked a question, but the bot has no Hailuo login. "
    "Send /login (or run `python -m bot auth import FILE` on the server)."
)

COMMANDS_PRIVATE = {
    "start": "Say hello",
    "help": "How to use the bot",
    "new": "Start a fresh conversation",
    "stop": "Stop the answer being written",
    "title": "Show the conversation's title",
}
COMMANDS_GROUP = {
    "ask": "Ask Hailuo a question",
    "new": "Start a fresh conversation",
    "stop": "Stop the answer being written",
    "title": "Show the conversation's title",
    "context": "Shared or personal conversations (admins)",
    "help": "How to use the bot",
}
UNKNOWN_COMMAND = "I don't know that command. Send /help to see what I can do."

ADMINS_ONLY = "Only the bot's admins can do that."
LOGIN_STARTING = "🔐 Login: starting the browser…"
LOGIN_LINK = "🔐 Login: open {url} to see and use the server's browser."
LOGIN_OPENED = "🔐 Login: the browser shows {site}. Log in there."
LOGIN_WAITING = "🔐 Login: waiting for you to log in at {site} — {minutes}:{seconds:02d} left.\n/login screenshot shows the page, /login cancel stops."
LOGIN_DONE = "✅ Logged in to Hailuo: login {fingerprint}."
LOGIN_FAILED = "❌ Login failed: {reason}"
LOGIN_CANCELLED = "✖️ Login cancelled."
LOGIN_BUSY = (
    "A login is already running — use /login cancel to stop it, or /login screenshot to see it."
)
LOGIN_NOT_RUNNING = "No login is running. Send /login to start one."
LOGIN_NO_PAGE = "The browser has no page to show yet."
LOGIN_SCREENSHOT_BUTTON = "📸 Screenshot"
LOGIN_CANCEL_BUTTON = "✖️ Cancel"
LOGIN_ANNOUNCE = "🔐 {name} logged the bot in to Hailuo (login {fingerprint}). Conversations made with the previous login start fresh."
LOGOUT_DONE = (
    "The stored Hailuo login was removed. Users can't get answers until someone runs /login."
)
LOGOUT_NOTHING = "There was no stored login."
STATUS_USER_OK = "✅ Working."
STATUS_USER_NEEDS_LOGIN = "⚠️ Not working right now: the bot needs an admin to log in to Hailuo."
STATUS_ADMIN = (
    "Hailuo Bridge {version}, up {uptime}\n"
    "Login: {login}\n"
    "Last successful answer: {last_success}\n"
    "Last upstream error: {last_error}\n"
    "Answers in flight: {in_flight}\n"
    "Conversations: {conversations}\n"
    "Answers: {answers}\n"
    "Database: {database}"
)
STATUS_LOGIN = "{fingerprint}, from {source}, {age} old{health}"
STATUS_NO_LOGIN = "none — send /login"
STATUS_NEVER = "never"
STATUS_NONE = "none"

COMMANDS_ADMIN = {
    "login": "Log the bot in to Hailuo",
    "status": "Health and statistics",
    "logout": "Remove the stored login",
}
