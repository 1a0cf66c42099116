"""The one exception type for user mistakes.

The command line turns a ``UserError`` into a one-line message and exit code 2; anything else is
a bug and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input from the user: an unknown name, a bad value, a missing or corrupt file."""


def suggest(name: str, choices) -> str:
    """``'mpl'`` -> ``"'mpl'; did you mean 'mlp'? (known: dcgan, mlp)"``, for error messages."""
    import difflib

    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"{name!r}{hint} (known: {', '.join(choices)})"


def one_line(e: BaseException) -> str:
    """``RuntimeError: boom`` from an exception: its type and the first line of its message."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
