"""Errors and warnings for things a user can fix: the CLI prints their message, no traceback."""


class PetalError(Exception):
    """A problem with the user's input (path, data, option); the message says what to do."""


class PetalWarning(UserWarning):
    """Something petal noticed and handled (e.g. a damaged cache rebuilt); the CLI prints
    `warning: MESSAGE`."""
