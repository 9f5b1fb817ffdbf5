"""Which requests a store accepts, the same for every backend.

Keys: S3 would take almost any string, but the local store maps keys onto paths,
so a key that could climb out of its root ('..', a leading '/', an empty
segment) is refused. Every backend applies the same rules, so code that
works on the local store works on S3 and the other way round. The put and list arguments are
checked here too, so both backends refuse the same mistakes with the same
message before sending or writing anything.
"""

MAX_KEY_BYTES = 1024
# S3's ListObjectsV2 returns at most 1,000 keys per request.
MAX_LIST = 1000
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


def check_list_arguments(prefix: str, limit: int) -> None:
    """Raise InvalidKey for a bad prefix, ValueError for a limit outside 1..MAX_LIST."""
    check_prefix(prefix)
    if not 1 <= limit <= MAX_LIST:
        raise ValueError(f"list limit must be between 1 and {MAX_LIST}, not {limit}")


def check_put_arguments(body, if_absent: bool, if_match: str | None) -> bytes:
    """``body`` as bytes; ValueError for both preconditions at once, TypeError for a non-bytes body."""
    if if_absent and if_match is not None:
        raise ValueError("put takes if_absent or if_match, not both")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"object body must be bytes, not {type(body).__name__}")
    return bytes(body)
