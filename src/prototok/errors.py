"""User-facing errors: the CLI prints them as one line and exits with status 2."""


class PrototokError(Exception):
    """Bad input or an unusable file/model; never a bug in prototok itself."""
