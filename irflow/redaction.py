"""Masking of secrets and PHI-shaped values, for logs, audit payloads and error messages.

Pure functions, no I/O. Two masks:

- a secret found with its label keeps the label and loses the value: ``sig=***``, ``AccountKey=***``,
  ``Bearer ***``, ``postgresql://user:***@host``;
- PHI, and a secret found without a label, is replaced whole by ``[REDACTED:<kind>]``
  (``ssn``, ``mrn``, ``dob``, ``email``, ``phone``, ``name``, ``address``, ``jwt``, ``key``, ``secret``).

Left alone on purpose: ARM resource ids, GUIDs, timestamps that are not labelled as a birth date,
IP addresses, HTTP status codes and hex digests (a SHA-256 fingerprint is not a secret).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import re
import secrets
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import Any

MASK = "***"
_MAX_DEPTH = 32

Replacement = str | Callable[[re.Match[str]], str]


def mask(kind: str) -> str:
    """The placeholder that replaces a value of this kind: ``[REDACTED:<kind>]``."""
    return f"[REDACTED:{kind}]"


def fingerprint(secret: str) -> str:
    """A stable reference to a secret or a recipient that does not reveal it: ``hmac-sha256:`` and 16 hex
    digits of HMAC-SHA256 under the installation's fingerprint key. Keyed, so a guessed value (an e-mail
    address, a phone number) cannot be confirmed without the key; an unsalted hash of a million guesses took
    0.6 s. The key comes from :func:`use_fingerprint_key` (IRFLOW_FINGERPRINT_KEY, or one generated on first
    use and kept in the database, see docs/data-retention.md); until then a per-process key is used."""
    digest = hmac.new(_fingerprint_key(), secret.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{FINGERPRINT_PREFIX}{digest[:16]}"


FINGERPRINT_PREFIX = "hmac-sha256:"
_FINGERPRINT_KEY: list[bytes] = []


def use_fingerprint_key(key: str | bytes) -> None:
    """Install the key every later :func:`fingerprint` uses (at least 16 bytes)."""
    raw = key.encode("utf-8") if isinstance(key, str) else key
    if len(raw) < 16:
        raise ValueError("the fingerprint key must be at least 16 bytes")
    _FINGERPRINT_KEY[:] = [raw]


def _fingerprint_key() -> bytes:
    if not _FINGERPRINT_KEY:
        _FINGERPRINT_KEY.append(secrets.token_bytes(32))
    return _FINGERPRINT_KEY[0]


# ------------------------------------------------------------------------------------------------
# Free text
# ------------------------------------------------------------------------------------------------

# Linear time: every pattern either does a bounded amount of work at each position (bounded repeats,
# never two adjacent repeats that can share characters, e.g. ``[ \t]*[:=]?[ \t]*``, which made
# "born" + 20 000 spaces take a minute) or is anchored by a look-behind so that a run is scanned from its
# start only. bench/redaction.py measures it on adversarial inputs from 1 KB to 1 MB.

# Between a label and its value: an optional closing quote (JSON, Python reprs), then `:` `=` `#` `-`.
_SEP = r"""["']?(?:[ \t]{0,16}[:=#-])?[ \t]{0,16}["']?"""
# Before a free-form value the separator is stricter: `password: x`, `"password": "x"`, `password=x`.
_PAIR_SEP = r"""["']?[ \t]{0,16}[:=][ \t]{0,16}"""
# A password may also be told in prose: `the password is hunter2`, `passphrase was: x`.
_PROSE_SEP = r"""[ \t]{1,4}(?:is|was)(?:[ \t]{0,4}[:=])?[ \t]{1,4}"""
# A labelled value: a quoted string, or a run up to the next delimiter.
_VALUE = r"""(?:"[^"\n]{0,1024}"|'[^'\n]{0,1024}'|[^\s&;,"'<>(){}\[\]]+)"""
_NUMBER_WORD = r"(?:[ _-]?(?:number|num|no\.?|#))?"

_CREDENTIAL_LABEL = (
    r"(?:password|passwd|pwd|passphrase|secret|token|signature|connection[_-]?string|conn[_-]?str|"
    r"(?:account|access|shared[_-]?access|api|private|subscription|encryption|master|primary|secondary|"
    r"signing)[_-]?key)"
)
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DATE = (
    r"(?:\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{8}"
    rf"|(?:\d{{1,2}}[ \t]{{1,8}})?{_MONTH}\.?[ \t]{{1,8}}(?:\d{{1,2}}(?:st|nd|rd|th)?,?[ \t]{{1,8}})?\d{{4}})"
    r"(?![\d:])"
)

_URL_PASSWORD = re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://[^\s:/?#@]*:)([^\s@/?#]+)(@)")
_AUTH_HEADER = re.compile(
    r"""(?i)(?<![\w-])([\w-]*authorization["']?[ \t]*[:=][ \t]*)"""
    r"""("[^"\n]*"|'[^'\n]*'|[A-Za-z][\w-]*[ \t]+[^\s,;"']+|[^\s,;"']+)"""
)
_COOKIE_HEADER = re.compile(
    r"""(?i)(?<![\w-])((?:set-)?cookie["']?[ \t]*[:=][ \t]*)("[^"\n]*"|'[^'\n]*'|[^\n"']+)"""
)
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|sharedkey|sharedaccesssignature)([ \t]+)([^\s,;\"'<>]+)")
_SAS_SIG = re.compile(r"(?i)(?<![\w-])(sig(?:=|%3D))([^\s&;,\"'<>]+)")
_SECRET_PAIR = re.compile(rf"(?i)(?<![\w-])([\w-]{{0,40}}?{_CREDENTIAL_LABEL})({_PAIR_SEP})({_VALUE})")
_SECRET_PROSE = re.compile(rf"(?i)(?<![\w-])(password|passwd|passphrase|pwd)({_PROSE_SEP})({_VALUE})")
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
_AAD_CLIENT_SECRET = re.compile(r"(?<![\w~.-])[\w~.-]{3,4}Q~[\w~.-]{30,}")
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])([A-Za-z0-9+/_-]{30,})(={0,2})(?![A-Za-z0-9+/_=-])")
_DOB = re.compile(
    r"(?i)\b(d\.?o\.?b\.?|date[ _-]?of[ _-]?birth|birth[ _-]?date|birthday|born(?:[ _-]on)?|birth)"
    rf"({_SEP}(?:(?:is|was|on)[ \t]{{1,8}})?)({_DATE})"
)
_SSN_LABELLED = re.compile(
    rf"(?i)\b(ssn|social[ _-]?security{_NUMBER_WORD})({_SEP})(\d{{3}}[ -]?\d{{2}}[ -]?\d{{4}})(?!\d)"
)
# Unlabelled, also glued to a word (`ID123-45-6789`) or spaced (`123 45 6789`).
_SSN = re.compile(r"(?<![\d.])(?<!\d-)\d{3}([- ])\d{2}\1\d{4}(?![\d])(?!-\d)")
_MRN = re.compile(
    rf"(?i)\b(mrn|mr[ \t]?\#|mr[ _-]?(?:number|num|no\.)|medical[ _-]?record{_NUMBER_WORD})({_SEP})"
    r"((?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9-]{3,23})"
)
# Any run of address characters before the `@` (RFC 5322 allows `{`, `'`, `=` …); see _email().
_EMAIL = re.compile(
    r"""(?<![^\s@<>()\[\]\\,;:"])[^\s@<>()\[\]\\,;:"]+"""
    r"(?:@|%40)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,16}[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
_PHONE_LABELLED = re.compile(
    rf"(?i)\b(phone|telephone|tel|mobile|cell|fax){_NUMBER_WORD}({_SEP})"
    r"(\+?\(?\d[\d \t().-]{8,18}\d)(?!\d)"
)
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[.-])"
    r"(?:\+1[ \t.-]?\(?\d{3}\)?[ \t.-]?\d{3}[ \t.-]?\d{4}"  # +1 555 123 4567, +1 (555) 123-4567
    r"|1([.-])\d{3}\1\d{3}\1\d{4}"  # 1-555-123-4567
    r"|\(\d{3}\)[ \t.-]?\d{3}[ \t.-]\d{4}"  # (555) 123-4567
    r"|\d{3}([.-])\d{3}\2\d{4})"  # 555-123-4567, 555.123.4567
    r"(?!\w)(?![.-]\d)"
)
# A person's name after a label: capitalised words (`Patient: Jane Q. Doe`); plain `name` needs two.
_NAME_WORD = r"(?:[A-Z][a-z]{0,30}(?:['\u2019-][A-Z]?[a-z]{1,30})?|[A-Z]\.)"
_PERSON_LABELLED = re.compile(
    r"(?<![\w-])((?i:(?:patient|member|insured|subscriber|beneficiary|guarantor)(?:[ _-]?name)?"
    r"|(?:first|last|full|given|family|middle|maiden)[ _-]?name|name))"
    r"""(["']?(?:[ \t]{0,8}[:=])?[ \t]{0,8}["']?)"""
    rf"({_NAME_WORD}(?:[ \t]{{1,4}}{_NAME_WORD}){{1,3}})(?![\w])"
)
_PERSON_PAIR = re.compile(
    r"(?i)(?<![\w-])((?:patient|first|last|full|given|family|middle|maiden)[ _-]?name)"
    rf"({_PAIR_SEP})({_VALUE})"
)
_ADDRESS_PAIR = re.compile(
    rf"(?i)(?<![\w-])((?:street|home|mailing|postal|billing|patient)[ _-]?address)({_PAIR_SEP})({_VALUE})"
)
# 64 or 128 hex digits: a key, unless a digest label comes just before it (`sha256=…`, `"hash": "…"`).
_HEX_SECRET = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{64}(?:[0-9a-fA-F]{64})?(?![0-9A-Za-z])")
_DIGEST_LABEL = re.compile(
    r"(?i)(?:sha-?(?:1|256|384|512)|md5|digest|hash|checksum|etag|fingerprint|thumbprint)[\"' \t:=]{0,6}$"
)
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEXISH = re.compile(r"[0-9a-fA-F-]+")
_STD_BASE64 = re.compile(r"[A-Za-z0-9+/]+")
_WORDISH = re.compile(r"[A-Za-z]?[a-z]+(?:[A-Z][a-z]+)*\d*(?:[-_][A-Za-z0-9]+)*")
_LETTER_RUN = re.compile(r"[a-z]{3,}|[A-Z]{3,}")
_TOKENISH = re.compile(r"[\d._~+/=*-]|[a-z][A-Z]")


def _keep_quotes(value: str, replacement: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[0] + replacement + value[0]
    return replacement


def _labelled(replacement: str) -> Callable[[re.Match[str]], str]:
    """Keep group 1 (label) and group 2 (separator), mask group 3 (value), keeping its quotes."""

    def replace(match: re.Match[str]) -> str:
        return match.group(1) + match.group(2) + _keep_quotes(match.group(3), replacement)

    return replace


def _header(match: re.Match[str]) -> str:
    return match.group(1) + _keep_quotes(match.group(2), MASK)


def _auth_scheme(match: re.Match[str]) -> str:
    token = match.group(3)
    # "Bearer token authentication is not permitted" is prose, "Bearer eyJ0eXAi…" is a credential.
    if len(token) >= 16 or _TOKENISH.search(token):
        return match.group(1) + match.group(2) + MASK
    return match.group(0)


_AT = re.compile(r"@|%40", re.IGNORECASE)


def _email(match: re.Match[str]) -> str:
    address = match.group(0)
    local = address[: _AT.search(address).start()]  # type: ignore[union-attr]
    # Keep what reads as a label or a quote before the address: `to=`, `'`, `mailto:/`.
    cut = max(local.rfind(c) for c in "=/?'") + 1
    if local[:cut].endswith("//") or local[cut:] == MASK:
        return address  # user info of a URL (`postgresql://irflow@db`), or a password masked already
    return local[:cut] + mask("email") if cut < len(local) else mask("email")


def _hex_secret(match: re.Match[str]) -> str:
    before = match.string[max(0, match.start() - 24) : match.start()]
    return match.group(0) if _DIGEST_LABEL.search(before) else mask("secret")


def _entropy(text: str) -> float:
    return -sum(n / len(text) * math.log2(n / len(text)) for n in Counter(text).values())


def _looks_like_path(text: str) -> bool:
    """`resourceGroups/rg-phi/providers/Microsoft`: most of it is `/`-separated words."""
    in_words = sum(len(s) for s in text.split("/") if len(s) >= 3 and _WORDISH.fullmatch(s))
    return "/" in text and in_words >= 0.6 * len(text)


def _looks_random(text: str) -> bool:
    """Whether an unpadded base64(-url) run reads like key material rather than an id, a path or a name."""
    text = _GUID.sub("", text)
    if len(text) < 40 or _HEXISH.fullmatch(text) or text.isupper() or text.islower():
        return False
    in_words = sum(len(w) for w in _LETTER_RUN.findall(text))
    camel_case = in_words >= 0.7 * len(text) and sum(c.isdigit() for c in text) < 4
    return _entropy(text) >= 4.2 and not camel_case and not _looks_like_path(text)


def _base64_secret(match: re.Match[str]) -> str:
    body, padding = match.group(1), match.group(2)
    if padding and _STD_BASE64.fullmatch(body):
        return mask("key" if len(body) + len(padding) == 88 else "secret")
    if _looks_random(body):
        return mask("secret")
    return match.group(0)


# A password typed with no label (`P@ssw0rd!2026`, pasted as an id): a word of 8 to 64 characters that mixes
# lower case, upper case, digits and a symbol, with none of the characters of paths, URLs, times, addresses
# or versions (`/`, `:`, `.`). Matched whole (no backtracking: one pass over each word), judged in Python.
_WORD = re.compile(r"""[^\s'"`<>()\[\]{},;|]{8,}""")
_PASSWORD_SYMBOLS = frozenset("!@#$%^&*~?+")


def _password_shaped(match: re.Match[str]) -> str:
    word = match.group(0)
    if (
        len(word) > 64
        or any(c in word for c in "/:.=")
        or not any(c in _PASSWORD_SYMBOLS for c in word)
        or not any(c.isdigit() for c in word)
        or not any(c.islower() for c in word)
        or not any(c.isupper() for c in word)
    ):
        return word
    return mask("secret")


# Order matters: labelled secrets before the shapes inside them, secrets before PHI (a password
# can look like a phone number), labelled PHI before the unlabelled shapes.
_RULES: tuple[tuple[re.Pattern[str], Replacement], ...] = (
    (_URL_PASSWORD, rf"\g<1>{MASK}\g<3>"),
    (_AUTH_HEADER, _header),
    (_COOKIE_HEADER, _header),
    (_AUTH_SCHEME, _auth_scheme),
    (_SAS_SIG, rf"\g<1>{MASK}"),
    (_SECRET_PAIR, _labelled(MASK)),
    (_SECRET_PROSE, _labelled(MASK)),
    (_JWT, mask("jwt")),
    (_AAD_CLIENT_SECRET, mask("secret")),
    (_BASE64_RUN, _base64_secret),
    (_HEX_SECRET, _hex_secret),
    (_DOB, _labelled(mask("dob"))),
    (_SSN_LABELLED, _labelled(mask("ssn"))),
    (_SSN, mask("ssn")),
    (_MRN, _labelled(mask("mrn"))),
    (_EMAIL, _email),
    (_PHONE_LABELLED, _labelled(mask("phone"))),
    (_PHONE, mask("phone")),
    (_PERSON_LABELLED, _labelled(mask("name"))),
    (_PERSON_PAIR, _labelled(mask("name"))),
    (_ADDRESS_PAIR, _labelled(mask("address"))),
    (_WORD, _password_shaped),
)


def redact_text(text: str) -> str:
    """Mask every secret and PHI-shaped value found in free text. Idempotent."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


# ------------------------------------------------------------------------------------------------
# Structured values
# ------------------------------------------------------------------------------------------------

# Field names are compared word by word (camelCase, kebab-case and snake_case alike), on their last
# words: `clientSecret`, `client-secret` and `CLIENT_SECRET` all end with the word `secret`.
_SECRET_SUFFIXES = frozenset(
    tuple(name.split("_"))
    for name in (
        *("password", "passwords", "passwd", "pwd", "passphrase", "secret", "secrets", "token", "tokens"),
        *("authorization", "cookie", "set_cookie", "credential", "credentials", "sas", "sig", "signature"),
        *("apikey", "api_key", "accountkey", "account_key", "access_key", "private_key", "shared_access_key"),
        *("sharedaccesskey", "subscription_key", "encryption_key", "master_key", "primary_key"),
        *("secondary_key", "signing_key", "connection_string", "conn_str", "shared_access_signature"),
        *("key_value", "secret_value"),
    )
)
# Names that mark a secret only on their own: `key` is one, `idempotency_key` is not.
_SECRET_EXACT = frozenset({("key",)})
_PHI_SUFFIXES: dict[tuple[str, ...], str] = {
    tuple(name.split("_")): kind
    for kind, names in {
        "ssn": "ssn social_security_number social_security_no",
        "mrn": "mrn medical_record_number medical_record_no",
        "dob": "dob date_of_birth birth_date birthdate birthday",
        "email": "email e_mail email_address emails",
        "phone": "phone phone_number mobile mobile_number telephone fax",
        "name": "patient_name first_name last_name full_name given_name family_name middle_name maiden_name",
        "address": "street_address home_address mailing_address postal_address billing_address "
        "patient_address zip_code postal_code",
    }.items()
    for name in names.split()
}
# `address` alone is a street address; `ip_address` or `server_address` is not.
_PHI_EXACT = {("address",): "address"}
# The `value` of an entry under these is key material: `{"keys": [{"keyName": "key1", "value": …}]}`.
_KEYISH_WORDS = frozenset({"key", "keys", "secret", "secrets", "credential", "credentials"})
_DIGEST_WORDS = frozenset(
    {"sha1", "sha256", "sha384", "sha512", "md5", "digest", "hash", "checksum", "etag", "thumbprint"}
)
_WORD_BREAK = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@functools.lru_cache(maxsize=4096)  # field names repeat (see _redact_name)
def _words(name: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in _WORD_BREAK.split(name) if w)


def _suffix_in(words: tuple[str, ...], names: Collection[tuple[str, ...]]) -> tuple[str, ...] | None:
    return next((words[-n:] for n in range(len(words), 0, -1) if words[-n:] in names), None)


def field_mask(name: str, *, under_key: bool = False) -> str | None:
    """The mask that replaces the whole value of a field of this name, or None if it has none."""
    words = _words(name)
    if words in _SECRET_EXACT or _suffix_in(words, _SECRET_SUFFIXES) or (under_key and words == ("value",)):
        return MASK
    if words in _PHI_EXACT:
        return mask(_PHI_EXACT[words])
    phi = _suffix_in(words, _PHI_SUFFIXES)
    return mask(_PHI_SUFFIXES[phi]) if phi else None


def redact(value: Any, *, default: Callable[[Any], Any] | None = None) -> Any:
    """Redact a value: mappings, lists, tuples and sets recursively; strings with :func:`redact_text`.

    A field named like a secret (``password``, ``client_secret``, ``AccountKey``, ``sas_token`` …)
    becomes ``***``; one named like PHI (``ssn``, ``email``, ``date_of_birth``, ``patient_name`` …)
    becomes ``[REDACTED:<kind>]``; there ``None`` and booleans stay, to tell "absent" from "hidden".
    Other numbers are returned as they are. An object of any other type is returned as it is, or,
    when *default* is given (e.g. ``str``), replaced by ``default(obj)`` redacted. Never raises.
    """
    try:
        return _redact(value, default, under_key=False, depth=0)
    except Exception:  # a hostile __str__, __iter__ or __hash__ must not break logging or auditing
        return mask("unrepresentable")


def _redact(value: Any, default: Callable[[Any], Any] | None, *, under_key: bool, depth: int) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return mask("nested")
    if isinstance(value, Mapping):
        return {
            (
                _redact_name(k) if type(k) is str else _redact(k, default, under_key=False, depth=depth + 1)
            ): _redact_field(k, v, default, under_key=under_key, depth=depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact(v, default, under_key=under_key, depth=depth + 1) for v in value]
        if isinstance(value, set | frozenset):
            return frozenset(items) if isinstance(value, frozenset) else set(items)
        return items if isinstance(value, list) else tuple(items)
    if default is not None:
        return _redact(default(value), None, under_key=under_key, depth=depth + 1)
    return value


@functools.lru_cache(maxsize=4096)
def _redact_name(name: str) -> str:
    """:func:`redact_text` of a field name, remembered: an audit payload or a log event repeats a few names
    (``incident_id``, ``channel`` …) thousands of times, and each costs some twenty pattern scans."""
    return redact_text(name)


def _redact_field(
    name: Any, value: Any, default: Callable[[Any], Any] | None, *, under_key: bool, depth: int
) -> Any:
    if not isinstance(name, str):
        return _redact(value, default, under_key=False, depth=depth)
    replacement = field_mask(name, under_key=under_key)
    if replacement is not None:
        return value if value is None or isinstance(value, bool) else replacement
    words = _words(name)
    if isinstance(value, str) and not _DIGEST_WORDS.isdisjoint(words) and _HEX_SECRET.fullmatch(value):
        return value  # a digest under its own name (`"sha256": "…"`) is evidence, not a key
    keyish = not _KEYISH_WORDS.isdisjoint(words)
    return _redact(value, default, under_key=keyish, depth=depth)
