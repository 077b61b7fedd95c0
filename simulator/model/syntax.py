"""Lexical checks shared by the parser and the rules: DNS names, labels,
header names, IP addresses and RE2 regular expressions.

Each ``check_*`` function returns ``None`` when the value is valid, else a
short reason (Istio's wording where it has one) for the caller to put into a
Diagnostic.  They mirror ``istio/pkg/config/validation`` and
``istio/pkg/config/labels``.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

import re2

_DNS1123_LABEL = re.compile(r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?")
_WILDCARD_LABEL = re.compile(r"(\*|(\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)")
_QUALIFIED_NAME = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_DNS_PREFIX = r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)*/"
_LABEL_KEY = re.compile(f"({_DNS_PREFIX})?({_QUALIFIED_NAME})")
_LABEL_VALUE = re.compile(f"({_QUALIFIED_NAME})?")
_TCHARS = re.compile(r"[!#$%&'*+\-.^_`|~A-Za-z0-9]+")
_PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
_HEADER_VALUE_BAD = re.compile("[\u0000-\u0008\u000a-\u001f\u007f]")

MAX_REGEX_LEN = 1024
RE2_NOTE = "Istio uses RE2 syntax (no lookaround, backreferences, possessive quantifiers)"

# Istio's bootstrap sets Envoy's runtime re2.max_program_size.error_level to 32768: Envoy
# refuses a regex whose RE2 program is larger
MAX_PROGRAM_SIZE = 32768

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # keep absl from printing to stderr
# RE2's default (8 MiB) lets a 1 KiB pattern such as \pL{200} build 240,000 instructions
# (0.3 s); 1 MiB still compiles every program up to about 60,000 (MAX_PROGRAM_SIZE passes)
# and refuses the rest within ~15 ms
_RE2_OPTIONS.max_mem = 1 << 20


def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_ip_subnet(value: str) -> str | None:
    """An IP address or a CIDR block (``ValidateIPSubnet``)."""
    if value.count("/") == 1:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value} is not a valid CIDR block"
        return None
    return None if is_ip(value) else f"{value} is not a valid IP"


def _check_dns_precondition(name: str) -> str | None:
    if len(name) > 255:
        return f"domain name {name!r} too long (max 255)"
    if not name:
        return "empty domain name not allowed"
    return None


def _check_dns1123_labels(domain: str) -> str | None:
    parts = domain.split(".")
    if parts[-1].isdigit():
        return f"domain name {domain!r} invalid (top level domain {parts[-1]!r} cannot be all-numeric)"
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return None
        if not is_dns1123_label(label):
            return f"domain name {domain!r} invalid (label {label!r} invalid)"
    return None


def check_fqdn(name: str) -> str | None:
    return _check_dns_precondition(name) or _check_dns1123_labels(name)


def check_wildcard_domain(name: str) -> str | None:
    """A DNS name whose first label may be a wildcard (``ValidateWildcardDomain``)."""
    err = _check_dns_precondition(name)
    if err:
        return err
    first, _, rest = name.partition(".")
    if len(first) > 63 or not _WILDCARD_LABEL.fullmatch(first):
        return f"domain name {name!r} invalid (label {first!r} invalid)"
    if "." in name:
        return _check_dns1123_labels(rest)
    return None


def check_label_key(key: str) -> str | None:
    m = _LABEL_KEY.fullmatch(key)
    if not m:
        return f"invalid label key {key!r}"
    if m.group(1) and len(m.group(1)) - 1 > 253:
        return f"invalid label key {key!r} (DNS prefix is too long)"
    if len(m.group(2)) > 63:
        return f"invalid label key {key!r} (name is too long)"
    return None


def check_label_value(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        return f"invalid label value {value!r}"
    return None


def check_header_name(name: str, allow_pseudo: bool = True) -> str | None:
    if not name:
        return "header name cannot be empty"
    if name.startswith("@request.auth.claims"):
        return None
    if allow_pseudo and name in _PSEUDO_HEADERS:
        return None
    if not _TCHARS.fullmatch(name):
        return f"header name {name!r} is not a valid header name"
    return None


def check_header_value(value: str) -> str | None:
    """``ValidateHTTPHeaderValue``: no control characters, valid ``%`` escapes."""
    if _HEADER_VALUE_BAD.search(value):
        return f"header value {value!r} contains control characters"
    i = 0
    while i < len(value):
        if value[i] != "%":
            i += 1
            continue
        if value[i + 1 : i + 2] == "%":
            i += 2
            continue
        close_paren = value.find(")", i)
        start = close_paren if "(" in value[i : close_paren if close_paren > 0 else i] else i + 1
        end = value.find("%", max(start, i + 1))
        if end == -1:
            return f"header value {value!r}: un-escaped '%' (use '%%' for a literal percent sign)"
        i = end + 1
    return None


@lru_cache(maxsize=4096)
def check_re2(pattern: str) -> str | None:
    """Compile with Google RE2 (what Envoy and Istio's Go ``regexp`` use).
    Returns RE2's reason when it does not compile, or the length problem."""
    if len(pattern) > MAX_REGEX_LEN:
        return f"regex is too large ({len(pattern)} characters), max length allowed is {MAX_REGEX_LEN}"
    return check_re2_program(pattern)


@lru_cache(maxsize=1024)
def check_re2_program(pattern: str) -> str | None:
    """:func:`check_re2` without the length limit on what users write: what Envoy checks
    of a regex istiod generates (a quoted 1024-character path prefix is longer)."""
    try:
        size = re2.compile(pattern, _RE2_OPTIONS)._regexp.ProgramSize()
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid regex"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return str(reason)
    except Exception as exc:  # noqa: BLE001 - any failure means "not RE2"
        return str(exc) or type(exc).__name__
    if size > MAX_PROGRAM_SIZE:
        return (f"regex '{pattern}' RE2 program size of {size} > max program size of {MAX_PROGRAM_SIZE} "
                "set for the error level threshold. Increase configured max program size if necessary.")
    # Go's regexp (Istio's webhook) rejects \C, which RE2 accepts.
    if re.search(r"(?<!\\)(?:\\\\)*\\C", pattern):
        return "invalid escape sequence: \\C"
    return None


LABELS_FORM = "KEY=VALUE[,KEY=VALUE...], e.g. app=productpage,version=v1"


def parse_label_list(text: str) -> tuple[dict[str, str], str | None]:
    """``app=productpage,version=v1`` -> the labels, and None; or ({}, what is wrong,
    quoting the bad part).  Keys and values follow Kubernetes' label syntax; "" is
    no labels."""
    labels: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            if text.strip():
                return {}, f"empty label in {text!r}"
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            return {}, f"{item!r} is not KEY=VALUE"
        reason = check_label_key(key) or check_label_value(value)
        if reason:
            return {}, f"{reason} in {item!r}"
        if key in labels and labels[key] != value:
            return {}, f"label {key!r} given twice ({labels[key]!r} and {value!r})"
        labels[key] = value
    return labels, None
