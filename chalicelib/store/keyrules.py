"""Which object keys a store accepts, the same for every backend.

S3 would take almost any string, but the local store maps keys onto paths,
so a key that could climb out of its root ('..', a leading '/', an empty
segment) is refused. Every backend applies the same rules, so code that
works on the local store works on S3 and the other way round.
"""

MAX_KEY_BYTES = 1024
# One byte of every file name is the local store's entry tag, and most file
# systems stop at 255 bytes per name.
MAX_SEGMENT_BYTES = 254


class InvalidKey(ValueError):
    """The key is not one a store accepts; nothing was sent or written."""


def check_key(key: str) -> str:
    """Return ``key`` unchanged if every backend can store it, else raise InvalidKey."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"object key must be a non-empty string, not {key!r}")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey(f"object key is not valid UTF-8: {key!r}") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes: {key[:40]!r}…")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise InvalidKey(f"object key holds a control character: {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(
                f"object key has an empty, '.' or '..' segment: {key!r}"
            )
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidKey(
                f"object key segment is longer than {MAX_SEGMENT_BYTES} bytes: {key!r}"
            )
    return key


def check_prefix(prefix: str) -> str:
    """Return a list prefix unchanged if it could start a valid key, else raise InvalidKey.

    A prefix may be empty and may end in '/' or half-way through a segment.
    """
    if not isinstance(prefix, str):
        raise InvalidKey(f"list prefix must be a string, not {prefix!r}")
    # Completing the prefix with one character turns "a/" and "a/." into
    # keys that exist, while "a//" or "/a" stay invalid.
    check_key(prefix + "x")
    return prefix
