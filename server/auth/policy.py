"""What a password, a display name and a phone number must look like.

The functions raise pydantic's `PydanticCustomError` with a short reason (no "Value
error," prefix), which `parse_body` turns into 400 `invalid` naming the field.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path

from pydantic_core import PydanticCustomError

COMMON_PASSWORDS = Path(__file__).resolve().parents[2] / "data" / "common_passwords.txt"
MIN_PASSWORD, MAX_PASSWORD = 10, 256
MAX_NAME = 100
# Bidirectional overrides and isolates let a name display as something it is not.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")

# The rules below as JSON Schema patterns for the OpenAPI document. ECMA-262 and Python
# read these escapes alike, and the checks use the same patterns, so the document is exact.
# Control (Cc) and bidi characters:
_CONTROL = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
# What str.strip() removes (str.isspace()):
_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Trimmed, not empty, and then no control characters.
NAME_PATTERN = (
    rf"^[{_SPACE}]*[^{_CONTROL}{_SPACE}](?:[^{_CONTROL}]*[^{_CONTROL}{_SPACE}])?[{_SPACE}]*$"
)
NO_CONTROL_PATTERN = rf"^[^{_CONTROL}]*$"
# Separators a phone number may be written with; they are dropped before the E.164 check.
_SEPARATORS = r"[ ()\-]*"
PHONE_PATTERN = rf"^{_SEPARATORS}\+{_SEPARATORS}[1-9](?:{_SEPARATORS}[0-9]){{6,14}}{_SEPARATORS}$"


def _refused(reason: str) -> PydanticCustomError:
    return PydanticCustomError("policy", reason)


@functools.cache
def common_passwords(path: Path = COMMON_PASSWORDS) -> frozenset[str]:
    """The shipped list of the most common passwords, lower-cased; read once."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS for ch in text)


def _character_classes(password: str) -> int:
    classes = (str.islower, str.isupper, str.isdigit)
    found = {i for ch in password for i, test in enumerate(classes) if test(ch)}
    if any(not (ch.islower() or ch.isupper() or ch.isdigit()) for ch in password):
        found.add(len(classes))
    return len(found)


def check_new_password(password: str) -> str:
    """A password a user may choose: 10 to 256 characters, more than one character
    class (lower, upper, digit, other), no control characters, not a common password."""
    if len(password) < MIN_PASSWORD:
        raise _refused(f"at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise _refused(f"at most {MAX_PASSWORD} characters")
    if _has_control(password):
        raise _refused("must not contain control characters")
    if _character_classes(password) < 2:
        raise _refused("mix at least two of: lower case, upper case, digits, symbols")
    if password.lower() in common_passwords():
        raise _refused("this password is too common")
    return password


def check_name(name: str) -> str:
    """A display name (NAME_PATTERN): at most 100 characters, trimmed, not empty, no control
    or bidi-override characters; returned trimmed."""
    if len(name) > MAX_NAME:
        raise _refused(f"at most {MAX_NAME} characters")
    name = name.strip()
    if not name:
        raise _refused("must not be empty")
    if _has_control(name):
        raise _refused("must not contain control characters")
    return name


def check_phone(phone: str) -> str:
    """An E.164 phone number (`+` and 7 to 15 digits, PHONE_PATTERN); spaces, dashes and
    parentheses are dropped."""
    phone = re.sub(r"[ ()\-]", "", phone)
    if not _PHONE.fullmatch(phone):
        raise _refused("an international number such as +4915112345678")
    return phone
