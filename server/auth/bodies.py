"""Request bodies of the auth endpoints, validated before anything else looks at them."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, EmailStr, Field, model_validator
from pydantic_core import PydanticCustomError

from server.auth.policy import MAX_PASSWORD, check_name, check_new_password, check_phone
from server.http.json import Body

Email = Annotated[EmailStr, AfterValidator(str.lower)]
NewPassword = Annotated[str, AfterValidator(check_new_password)]
Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]
Name = Annotated[str, AfterValidator(check_name)]
Phone = Annotated[str, Field(max_length=32), AfterValidator(check_phone)]
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
