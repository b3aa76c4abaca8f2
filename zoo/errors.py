"""Errors a user can cause. The CLI prints their message and exits with status 2, no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem with the user's input: the message names the thing and the fix."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' — did you mean 'x'?' when a close match exists, else a list of the valid choices."""
    choices = sorted(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" — did you mean '{close[0]}'?"
    return f" (choose from: {', '.join(choices)})" if choices else ""
