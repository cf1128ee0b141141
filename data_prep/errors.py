"""The one error type of data preparation."""


class PrepareError(ValueError):
    """Bad input or output state; the message names the file and the annotation entry.

    The CLI prints it without a traceback and exits with status 2."""
