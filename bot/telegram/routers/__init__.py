"""One router per feature; order matters: commands and stops before the catch-all questions."""

from aiogram import Router

from bot.telegram.routers import conversation, guide, membership, questions, stopping


def all_routers() -> list[Router]:
    return [
        membership.router,
        stopping.router,
        guide.router,
        conversation.router,
        questions.router,
    ]
