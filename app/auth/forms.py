from collections.abc import Callable
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, Field, Form, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, ValidationError

from app.accounts import email_taken, username_taken
from app.sansio.identity import IdentityError, clean_email, clean_password, clean_username


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember_me = BooleanField("Remember me")
    submit = SubmitField("Log in")


def _rule(clean: Callable[[str], str]) -> Callable[[Form, Field], None]:
    """A WTForms validator from one of the identity rules: the field keeps the cleaned value."""

    def validate(_form: Form, field: Field) -> None:
        try:
            field.data = clean(field.data or "")
        except IdentityError as exc:
            message = str(exc)
            raise ValidationError(f"{message[0].upper()}{message[1:]}.") from None

    return validate


# What the form says of a taken name or address, found by its check or by the commit.
TAKEN = {"username": "That username is taken.", "email": "That email is already registered."}


class RegistrationForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), _rule(clean_username)])
    email = EmailField("Email", validators=[DataRequired(), _rule(clean_email)])
    password = PasswordField("Password", validators=[DataRequired(), _rule(clean_password)])
    password2 = PasswordField("Repeat password", validators=[DataRequired(), EqualTo("password")])
    submit = SubmitField("Register")

    # Run after the field's validators, on the cleaned value.
    def validate_username(self, field: StringField) -> None:
        if not field.errors and username_taken(field.data):
            raise ValidationError(TAKEN["username"])

    def validate_email(self, field: EmailField) -> None:
        if not field.errors and email_taken(field.data):
            raise ValidationError(TAKEN["email"])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    # The registration form's fields themselves: one password rule for both forms.
    password = RegistrationForm.password
    password2 = RegistrationForm.password2
    submit = SubmitField("Change password")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.password.label.text = "New password"


class LogoutForm(FlaskForm):
    submit = SubmitField("Log out")
