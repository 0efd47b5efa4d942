"""One router per feature, built afresh for each Dispatcher.

Order matters: chat lifecycle, stops and commands come before the catch-all questions."""

from aiogram import Router

from bot.telegram.routers import (
    admin,
    choices,
    conversation,
    guide,
    membership,
    questions,
    stopping,
)


def all_routers() -> list[Router]:
    return [
        membership.create_router(),
        stopping.create_router(),
        guide.create_router(),
        admin.create_router(),
        conversation.create_router(),
        choices.create_router(),
        questions.create_router(),
    ]
