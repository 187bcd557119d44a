"""The error type for mistakes a user can fix: the CLI prints its message, no traceback."""


class PetalError(Exception):
    """A problem with the user's input (path, data, option); the message says what to do."""
