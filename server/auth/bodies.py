"""Request bodies of the auth endpoints, validated before anything else looks at them."""

from __future__ import annotations

from typing import Annotated, Self

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import AfterValidator, ConfigDict, EmailStr, Field, model_validator
from pydantic_core import PydanticCustomError

from server.auth.policy import (
    MAX_NAME,
    MAX_PASSWORD,
    MIN_PASSWORD,
    NAME_PATTERN,
    NO_CONTROL_PATTERN,
    PHONE_PATTERN,
    check_name,
    check_new_password,
    check_phone,
)
from server.http.json import Body

# EmailStr refuses the special-use domains (`.test`, `.local`, ...): the document says so.
_SPECIAL_USE = "|".join(
    "".join(f"[{ch}{ch.upper()}]" for ch in name) for name in SPECIAL_USE_DOMAIN_NAMES
)
Email = Annotated[
    EmailStr,
    Field(json_schema_extra={"not": {"pattern": rf"[.@](?:{_SPECIAL_USE})$"}}),
    AfterValidator(str.lower),
]
# The checks give the reasons; `json_schema_extra` shows the document the same rules (the
# pattern is not enforced a second time by pydantic, whose message would be less clear).
NewPassword = Annotated[
    str,
    Field(
        json_schema_extra={
            "minLength": MIN_PASSWORD,
            "maxLength": MAX_PASSWORD,
            "pattern": NO_CONTROL_PATTERN,
            "description": "At least two of: lower case, upper case, digits, symbols; "
            "not a common password.",
        }
    ),
    AfterValidator(check_new_password),
]
Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]
Name = Annotated[
    str,
    Field(json_schema_extra={"minLength": 1, "maxLength": MAX_NAME, "pattern": NAME_PATTERN}),
    AfterValidator(check_name),
]
Phone = Annotated[
    str,
    Field(max_length=32, json_schema_extra={"pattern": PHONE_PATTERN}),
    AfterValidator(check_phone),
]
OtpCode = Annotated[str, Field(pattern=r"^[0-9]{6}$")]
# A TOTP code (6 digits) or a backup code (`xxxx-xxxx-xxxx-xxxx`); spaces tolerated.
SecondFactor = Annotated[str, Field(min_length=1, max_length=64)]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=512)]


class Empty(Body):
    """Endpoints without a body accept nothing, `{}`, and no stray fields."""


class Register(Body):
    email: Email
    password: NewPassword
    name: Name


class Login(Body):
    email: Email
    password: Password
    totp: SecondFactor | None = None


class Refresh(Body):
    refresh_token: OpaqueToken


class Logout(Body):
    refresh_token: OpaqueToken | None = None


class UpdateMe(Body):
    name: Name | None = None


class _EmailOrPhone(Body):
    # Exactly one of the two, not null: what `_exactly_one` checks, as JSON Schema says it.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("email", "phone")
            ]
        }
    )

    email: Email | None = None
    phone: Phone | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.email is None) == (self.phone is None):
            raise PydanticCustomError("one_of", "give exactly one of email or phone")
        return self


class OtpRequest(_EmailOrPhone):
    pass


class OtpVerify(_EmailOrPhone):
    code: OtpCode
    totp: SecondFactor | None = None


class ForgotPassword(Body):
    email: Email


class ResetPassword(Body):
    email: Email
    code: OtpCode
    new_password: NewPassword


class ChangePassword(Body):
    current_password: Password
    new_password: NewPassword


class TotpCode(Body):
    code: SecondFactor
