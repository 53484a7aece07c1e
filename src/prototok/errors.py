"""User-facing errors: the CLI prints them as one line and exits with status 2."""


class PrototokError(Exception):
    """Bad input or an unusable file/model; never a bug in prototok itself."""


def first_line(err: BaseException, *, typed: bool = False) -> str:
    """The first line of an error's message, for a one-line PrototokError about an error raised by another
    library (whose messages often run to many lines); the error type's name when the message is empty.
    `typed` puts the type's name in front ("OSError: ...") where the message alone would not say what failed."""
    text = str(err).strip()
    if not text:
        return type(err).__name__
    line = text.splitlines()[0].rstrip()
    return f"{type(err).__name__}: {line}" if typed else line
