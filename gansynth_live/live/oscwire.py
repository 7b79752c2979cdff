"""OSC 1.0 datagrams decoded strictly: every byte accounted for, or the reason why not.

python-osc is lenient where a live server must not be: it runs a message whose last
argument was cut short (as zeros), drops type tags it does not know and skips bundles
it cannot decode without saying so. Here each of these is an `OscError` naming what is
wrong, which the server answers with /fail.

A datagram is one message or a bundle (`#bundle`, a time tag, then size-prefixed
elements, bundles nested up to `MAX_BUNDLE_DEPTH`). `split_packet` checks a bundle's
framing as a whole (a bundle that cannot be decoded runs nothing) and returns its
messages undecoded; `decode_message` decodes one when it is handled, so messages beyond
the server's rate are never decoded at all.

Argument types: i (int32), h (int64), f (float32), d (float64) -> int / float; s, S ->
str (UTF-8); b -> bytes; T, F -> bool. Any other type tag is refused.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

BUNDLE_TAG = b"#bundle\x00"
MAX_ADDRESS_BYTES = 256
MAX_BUNDLE_DEPTH = 8

_FIXED = {"i": struct.Struct(">i"), "h": struct.Struct(">q"), "f": struct.Struct(">f"),
          "d": struct.Struct(">d")}
_SIZE = struct.Struct(">i")


class OscError(ValueError):
    """A datagram or message that is not valid OSC; `address` is the message's address
    when it could be read ("" otherwise)."""

    def __init__(self, reason: str, address: str = ""):
        super().__init__(reason)
        self.address = address


class Message(NamedTuple):
    address: str
    args: tuple


def _padded(length: int) -> int:
    return (length + 4) & ~3  # a string and its NUL, padded to 4 bytes


def _string(data: bytes, offset: int, what: str) -> tuple[str, int]:
    end = data.find(b"\x00", offset)
    if end < 0:
        raise OscError(f"{what} has no terminating NUL")
    raw = data[offset:end]
    stop = offset + _padded(end - offset)
    if stop > len(data):
        raise OscError(f"{what} is not padded to a multiple of 4 bytes")
    try:
        return raw.decode("utf-8"), stop
    except UnicodeDecodeError:
        raise OscError(f"{what} is not UTF-8") from None


def peek_address(data: bytes | memoryview) -> str:
    """The address of an undecoded message (for rate limiting); "" if unreadable."""
    end = bytes(data[:MAX_ADDRESS_BYTES + 1]).find(b"\x00")
    if end <= 0:
        return ""
    return bytes(data[:end]).decode("utf-8", "replace")


def split_packet(data: bytes) -> list[memoryview]:
    """The undecoded messages of a datagram, in order (a bundle's, flattened);
    OscError if it is empty or its bundle framing is broken."""
    view = memoryview(data)
    if not len(view):
        raise OscError("empty datagram")
    messages: list[memoryview] = []
    _split(view, messages, 0)
    return messages


def _split(view: memoryview, out: list[memoryview], depth: int) -> None:
    if bytes(view[:8]) != BUNDLE_TAG:
        if view[0] != ord("/"):
            raise OscError("neither a message (address starting with '/') nor a bundle")
        out.append(view)
        return
    if depth >= MAX_BUNDLE_DEPTH:
        raise OscError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    if len(view) < 16:
        raise OscError("bundle shorter than its header and time tag (16 bytes)")
    offset = 16  # the time tag is ignored: everything runs at once
    while offset < len(view):
        if offset + 4 > len(view):
            raise OscError(f"bundle element size at byte {offset} is cut short")
        size = _SIZE.unpack_from(view, offset)[0]
        offset += 4
        if size <= 0 or size % 4:
            raise OscError(f"bundle element at byte {offset} has size {size} "
                           f"(must be a positive multiple of 4)")
        if offset + size > len(view):
            raise OscError(f"bundle element at byte {offset} claims {size} bytes, "
                           f"{len(view) - offset} are left")
        _split(view[offset:offset + size], out, depth + 1)
        offset += size


def decode_message(data: bytes | memoryview) -> Message:
    """A message's address and arguments; OscError if any byte does not fit."""
    view = bytes(data)
    address, offset = _string(view, 0, "address")
    if not address.startswith("/"):
        raise OscError("address must start with '/'")
    if len(address.encode()) > MAX_ADDRESS_BYTES:
        raise OscError(f"address longer than {MAX_ADDRESS_BYTES} bytes")
    try:
        return Message(address, _arguments(view, offset))
    except OscError as e:
        raise OscError(str(e), address) from None


def _arguments(view: bytes, offset: int) -> tuple:
    if offset == len(view):
        return ()  # no type tag string: an OSC 1.0 message without arguments
    tags, offset = _string(view, offset, "type tag string")
    if not tags.startswith(","):
        raise OscError("type tag string must start with ','")
    args = []
    for number, tag in enumerate(tags[1:], start=1):
        what = f"argument {number} ({tag!r})"
        if tag in _FIXED:
            fixed = _FIXED[tag]
            if offset + fixed.size > len(view):
                raise OscError(f"{what} is cut short")
            args.append(fixed.unpack_from(view, offset)[0])
            offset += fixed.size
        elif tag in "sS":
            value, offset = _string(view, offset, what)
            args.append(value)
        elif tag == "b":
            if offset + 4 > len(view):
                raise OscError(f"{what}: blob size is cut short")
            size = _SIZE.unpack_from(view, offset)[0]
            end = offset + 4 + size
            if size < 0 or end + (-size % 4) > len(view):
                raise OscError(f"{what}: blob of {size} bytes is cut short")
            args.append(view[offset + 4:end])
            offset = end + (-size % 4)
        elif tag in "TF":
            args.append(tag == "T")
        else:
            raise OscError(f"{what}: unsupported type tag (supported: i h f d s S b T F)")
    if offset != len(view):
        raise OscError(f"{len(view) - offset} bytes left after the last argument")
    return tuple(args)


__all__ = ["Message", "OscError", "decode_message", "peek_address", "split_packet"]
