"""Request-path normalization, as Envoy's HTTP connection manager does it before
routing and forwarding (``ConnectionManagerUtility::maybeNormalizePath``), with the
settings Istio gives every sidecar and gateway listener for the mesh option
``pathNormalization.normalization``:

===========================  ==============  ============  =====================================
Istio                        normalize_path  merge_slashes path_with_escaped_slashes_action
===========================  ==============  ============  =====================================
``NONE``                     false           false         KEEP_UNCHANGED
``BASE`` (the default)       true            false         KEEP_UNCHANGED
``MERGE_SLASHES``            true            true          KEEP_UNCHANGED
``DECODE_AND_MERGE_SLASHES`` true            true          UNESCAPE_AND_FORWARD
===========================  ==============  ============  =====================================

The steps, in Envoy's order, all on the path before the first ``?`` (the query is
kept byte for byte):

1. a ``#fragment`` is cut off (Istio's bootstrap sets
   ``http_reject_path_with_fragment: false``, so Envoy strips it);
2. ``DECODE_AND_MERGE_SLASHES`` only: ``%2F``/``%2f`` become ``/`` and ``%5C``/``%5c``
   become ``\\`` (``PathUtil::unescapeSlashes``);
3. ``normalize_path`` (``PathUtil::canonicalPath``): path parameters on dot segments are
   dropped (``/..;x=y/`` is ``/../``), then the URL library's path canonicalization
   (RFC 3986 ``remove_dot_segments``): ``.`` and ``..`` segments, also written
   ``%2e``/``%2E``, are resolved and never climb above ``/``; ``\\`` is ``/``;
   percent-encoded unreserved characters (``A-Z a-z 0-9 - . _ ~``) are decoded, every
   other escape is kept exactly as written (``%2F`` stays, case kept); characters a
   path may not hold (space, ``"``, ``<``, ``>``, ``^``, backquote, ``{``, ``|``, ``}``,
   controls, non-ASCII) are escaped as ``%XX``; a path not starting with ``/`` gets one.
   An escaped NUL (``%00``) fails normalization: Envoy answers 400;
4. ``merge_slashes``: runs of ``/`` become one.

``BASE`` does not merge slashes: ``//admin`` stays ``//admin``.
Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Final

NONE: Final = "NONE"
BASE: Final = "BASE"
MERGE_SLASHES: Final = "MERGE_SLASHES"
DECODE_AND_MERGE_SLASHES: Final = "DECODE_AND_MERGE_SLASHES"
MODES: Final = (NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES)

# A path made only of these characters, starting with "/" and without "/." (so no dot
# segment), is already canonical: no escape, no backslash, nothing to escape, no fragment.
_CLEAN: Final = re.compile(r"/[A-Za-z0-9/\-._~!$&'()*+,;=:@?]*")
# A path part without escapes, backslashes or characters to escape: only its dot segments change.
_PLAIN: Final = re.compile(r"[A-Za-z0-9/\-._~!$&'()*+,;=:@]*")
_HEX: Final = "0123456789abcdefABCDEF"
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# ASCII characters the canonical path carries escaped ('%', '\\' and '.' are handled apart)
_ESCAPED: Final = frozenset(' "#<>?^`{|}\x7f')


def parse_mode(value: str) -> str | None:
    """``base`` / ``BASE`` / ``merge-slashes`` -> the mode, None when unknown."""
    v = value.strip().upper().replace("-", "_")
    if v == "DEFAULT":
        return BASE
    return v if v in MODES else None


def normalize_path(path: str, mode: str = BASE) -> str | None:
    """The path Envoy routes and forwards for request-target ``path``; None when
    Envoy rejects the request (400, ``path_normalization_failed``)."""
    merge = mode == MERGE_SLASHES or mode == DECODE_AND_MERGE_SLASHES
    if _CLEAN.fullmatch(path) is not None and "/." not in path and not (merge and "//" in path):
        return path
    hash_at = path.find("#")
    if hash_at != -1:
        path = path[:hash_at]
    if mode == NONE:
        return path
    q = path.find("?")
    if q == -1:
        only, query = path, ""
    else:
        only, query = path[:q], path[q:]
    if mode == DECODE_AND_MERGE_SLASHES:
        only = unescape_slashes(only)
    only = strip_dot_segment_parameters(only)
    if _PLAIN.fullmatch(only) is not None:
        canonical = remove_dot_segments(only)  # the same result, a segment (not a character) at a time
    else:
        checked = canonicalize(only)
        if checked is None:
            return None
        canonical = checked
    if merge:
        canonical = merge_slashes(canonical)
    return canonical + query


def unescape_slashes(path: str) -> str:
    """``%2F``/``%2f`` -> ``/`` and ``%5C``/``%5c`` -> ``\\`` (the path part only)."""
    if "%" not in path:
        return path
    out: list[str] = []
    i = 0
    n = len(path)
    while i < n:
        c = path[i]
        if c == "%" and i + 3 <= n and path[i + 1] in "25":
            pair = path[i + 1 : i + 3].lower()
            if pair == "2f":
                out.append("/")
                i += 3
                continue
            if pair == "5c":
                out.append("\\")
                i += 3
                continue
        out.append(c)
        i += 1
    return "".join(out)


def strip_dot_segment_parameters(path: str) -> str:
    """``/a/..;x=1/b`` -> ``/a/../b`` and ``/.;x`` -> ``/.`` (Envoy's
    ``strip_dotdot_segments_with_parameters``)."""
    if ";" not in path:
        return path
    segments = path.split("/")
    for i, seg in enumerate(segments):
        if seg.startswith("..;"):
            segments[i] = ".."
        elif seg.startswith(".;"):
            segments[i] = "."
    return "/".join(segments)


def merge_slashes(path: str) -> str:
    """Runs of ``/`` become one, keeping a leading and a trailing slash."""
    if "//" not in path:
        return path
    prefix = "/" if path.startswith("/") else ""
    suffix = "/" if path.endswith("/") else ""
    return prefix + "/".join(s for s in path.split("/") if s) + suffix


def remove_dot_segments(path: str) -> str:
    """``canonicalize`` for a path of plain characters (no ``%``, ``\\``, nothing to
    escape): ``.`` segments dropped, ``..`` drops the segment before it (never the
    root), a dot segment at the end leaves a trailing ``/``; empty segments are kept."""
    if "." not in path:
        return path if path.startswith("/") else "/" + path
    segments = path.split("/")
    if path.startswith("/"):
        segments = segments[1:]
    out: list[str] = []
    last = len(segments) - 1
    trailing = False
    for i, seg in enumerate(segments):
        if seg == ".":
            trailing = i == last
        elif seg == "..":
            if out:
                out.pop()
            trailing = i == last
        else:
            out.append(seg)
    return "/" + "/".join(out) + ("/" if trailing and out else "")


def _dot_len(spec: str, i: int, end: int) -> int:
    """1 for ``.``, 3 for ``%2e``/``%2E``, else 0 (the URL library's IsDot)."""
    c = spec[i]
    if c == ".":
        return 1
    if c == "%" and i + 3 <= end and spec[i + 1] == "2" and spec[i + 2] in "eE":
        return 3
    return 0


def _is_slash(c: str) -> bool:
    return c == "/" or c == "\\"


def _back_up(out: list[str]) -> None:
    """Drop the last segment of ``out`` (which ends with ``/``), never the first ``/``."""
    i = len(out) - 1
    if i == 0:
        return
    i -= 1
    while out[i] != "/" and i > 0:
        i -= 1
    del out[i + 1 :]


def _hex_at(s: list[str] | str, i: int, end: int) -> int:
    """The byte ``%XX`` at ``s[i]`` encodes, or -1."""
    if i + 3 > end:
        return -1
    a = s[i + 1]
    b = s[i + 2]
    if a not in _HEX or b not in _HEX:
        return -1
    return int(a + b, 16)


def canonicalize(spec: str) -> str | None:
    """The URL library's path canonicalization (see the module docstring); None on
    an escaped or raw NUL."""
    out: list[str] = []
    end = len(spec)
    if end == 0:
        return "/"
    if not _is_slash(spec[0]):
        out.append("/")
    last_invalid_percent = -1
    i = 0
    while i < end:
        c = spec[i]
        dot = _dot_len(spec, i, end)
        if dot:
            if out and out[-1] == "/":
                after = i + dot
                if after == end:
                    i = end  # "." at the end: the current directory
                    continue
                if _is_slash(spec[after]):
                    i = after + 1  # "./"
                    continue
                dot2 = _dot_len(spec, after, end)
                if dot2:
                    after2 = after + dot2
                    if after2 == end:
                        _back_up(out)
                        i = end
                        continue
                    if _is_slash(spec[after2]):
                        _back_up(out)
                        if last_invalid_percent >= len(out):
                            last_invalid_percent = -1
                        i = after2 + 1
                        continue
            out.append(".")
            i += dot
            continue
        if c == "\\":
            out.append("/")
        elif c == "%":
            value = _hex_at(spec, i, end)
            if value == -1:
                last_invalid_percent = len(out)
                out.append("%")
            elif value == 0:
                return None
            else:
                ch = chr(value)
                if ch in _UNRESERVED:
                    out.append(ch)
                    if last_invalid_percent != -1 and last_invalid_percent + 3 >= len(out):
                        _nested_escapes(spec, i + 3, end, last_invalid_percent, out)
                else:
                    out.extend(spec[i : i + 3])  # kept exactly as written
                    i += 3
                    continue
                i += 3
                continue
        elif c == "\x00":
            return None
        elif c in _ESCAPED or ord(c) < 0x20 or ord(c) > 0x7E:
            out.extend("%%%02X" % (ord(c) & 0xFF))
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _nested_escapes(spec: str, next_i: int, end: int, lip: int, out: list[str]) -> None:
    """The URL library's CheckForNestedEscapes: when unescaping made an earlier lone
    ``%`` look like the start of a valid escape (``%%30%30``), that ``%`` becomes ``%25``."""
    length = len(out)
    last = out[-1]
    append_next = lip == length - 2
    if append_next:
        if next_i == end or ord(spec[next_i]) >= 0x80:
            return
        out.append(spec[next_i])
    if _hex_at(out, lip, len(out)) != -1:
        if not append_next:
            out.append(out[lip + 1])
        out[lip + 1] = "2"
        out[lip + 2] = "5"
        out.append(last)
    elif append_next:
        del out[length:]
