"""The one user-facing error type: the CLI prints it as a single `error: ...` line, exit 2."""


class UserError(Exception):
    """A problem with the user's input or options, explained in one line with what to do."""

    exit_code = 2
