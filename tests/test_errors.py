"""errors.first_line: the one rule for turning another library's error into one line of a PrototokError."""

from prototok.errors import first_line


def test_first_line_keeps_the_first_line_of_the_message():
    assert first_line(ValueError("\n  bad value  \nmore detail\n")) == "bad value"
    assert first_line(OSError("one line")) == "one line"


def test_an_empty_message_gives_the_type_name():
    assert first_line(RuntimeError()) == "RuntimeError"
    assert first_line(RuntimeError("  \n ")) == "RuntimeError"


def test_typed_puts_the_type_name_in_front():
    assert first_line(RuntimeError("no device\nstack"), typed=True) == "RuntimeError: no device"
    assert first_line(RuntimeError(), typed=True) == "RuntimeError"
