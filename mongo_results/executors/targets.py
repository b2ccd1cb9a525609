"""Where a store lives: URI schemes, database names, safe host descriptions.

Shared by every MongoDB executor; nothing here opens a connection.
"""

from __future__ import annotations

from urllib.parse import unquote

from ..errors import InvalidUriError

__all__ = [
    "DEFAULT_DATABASE",
    "MOCK_SCHEME",
    "URI_SCHEMES",
    "check_uri",
    "database_from_uri",
    "describe_hosts",
    "is_mock_uri",
    "is_uri",
]

DEFAULT_DATABASE = "mongo_results"
MOCK_SCHEME = "mongomock"
URI_SCHEMES = ("mongodb", "mongodb+srv", MOCK_SCHEME)


def _scheme(value: str) -> str | None:
    head, sep, _ = value.partition("://")
    return head.lower() if sep and head and "/" not in head else None


def is_uri(value: object) -> bool:
    """Whether ``value`` is a string with a ``scheme://`` (supported or not)."""
    return isinstance(value, str) and _scheme(value) is not None


def check_uri(uri: str) -> str:
    """Return the scheme of a supported URI; InvalidUriError (a ValueError) otherwise."""
    scheme = _scheme(uri)
    if scheme not in URI_SCHEMES:
        raise InvalidUriError(
            f"Unsupported store URI scheme {scheme!r}: use a directory path or a "
            "mongodb://, mongodb+srv:// or mongomock:// URI"
        )
    rest = uri.split("://", 1)[1]
    userinfo, at, _ = _authority(rest).rpartition("@")
    # An unescaped "/", "?" or "#" in a password ends the host part early, and the password
    # would then be taken for a host name: in messages, in repr(). Such a URI is refused.
    if (not at and "@" in rest) or "@" in userinfo or userinfo.count(":") > 1:
        raise InvalidUriError(
            "The store URI's user name or password holds an unescaped '@', ':', '/', '?' or '#': "
            "percent-escape them (urllib.parse.quote_plus). The URI is not repeated here."
        )
    return scheme


def is_mock_uri(uri: str) -> bool:
    """Whether the URI names the embedded in-process store."""
    return _scheme(uri) == MOCK_SCHEME


def _authority(rest: str) -> str:
    """``user:password@host1,host2`` of a URI after its ``scheme://``."""
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return rest[: min(ends)] if ends else rest


def database_from_uri(uri: str) -> str:
    """The database named by the URI's path, or ``mongo_results``."""
    rest = uri.split("://", 1)[1]
    _, slash, path = rest.partition("/")
    name = unquote(path.split("?", 1)[0]) if slash else ""
    return name or DEFAULT_DATABASE


def describe_hosts(uri: str) -> str:
    """The URI's hosts, for messages: never the user name or password."""
    return _authority(uri.split("://", 1)[1]).rpartition("@")[2] or "localhost"
