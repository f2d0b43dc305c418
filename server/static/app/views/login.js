// Signing in (password, with the second factor when the account has 2FA; or a one-time
// code by email) and signing up.

import { api, ApiError } from "../api.js";
import { alertBox, field, h, onSubmit } from "./dom.js";

export function loginView(container, ctx) {
  const [emailField, email] = field("Email", { type: "email", name: "email", autocomplete: "username", required: true });
  const [passwordField, password] = field("Password", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const [totpField, totp] = field("Authentication code or backup code", { name: "totp", autocomplete: "one-time-code", inputmode: "text" });
  totpField.hidden = true;
  const hint = h("p", { class: "hint", hidden: true }, "This account has two-factor authentication on: enter the code from your authenticator app, or one of your backup codes.");
  const errors = alertBox();
  const form = h("form", { class: "card", "aria-label": "Log in" },
    h("h1", {}, "Log in"),
    emailField, passwordField, hint, totpField, errors,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Log in")),
  );
  onSubmit(form, errors, async () => {
    const body = { email: email.value.trim(), password: password.value };
    if (!totpField.hidden && totp.value.trim()) body.totp = totp.value.trim();
    try {
      await ctx.signIn(await api("POST", "/auth/login", body));
    } catch (error) {
      if (error instanceof ApiError && error.code === "totp_required") {
        const first = totpField.hidden;
        totpField.hidden = false;
        hint.hidden = false;
        totp.required = true;
        totp.focus();
        if (first) return;
        throw new ApiError(401, "totp_required", "That code is not right. Try the current code, or a backup code.");
      }
      throw error;
    }
  });
  container.append(
    form,
    otpForm(ctx),
    h("p", { class: "center" }, "New here? ", h("a", { href: "#/signup" }, "Create an account")),
  );
  email.focus();
}

// One-time code by email: ask for it, then type it in (and the 2FA code if needed).
function otpForm(ctx) {
  const [emailField, email] = field("Email for a one-time code", { type: "email", name: "otp-email", autocomplete: "email", required: true });
  const [codeField, code] = field("One-time code", { name: "otp-code", inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}" });
  const [totpField, totp] = field("Authentication code or backup code", { name: "otp-totp", autocomplete: "one-time-code" });
  codeField.hidden = true;
  totpField.hidden = true;
  const sent = h("p", { class: "hint", role: "status", hidden: true });
  const errors = alertBox();
  const submit = h("button", { type: "submit" }, "Email me a code");
  const form = h("form", { class: "card", "aria-label": "Log in with a one-time code" },
    h("h2", {}, "Or log in with a one-time code"),
    emailField, sent, codeField, totpField, errors, h("div", { class: "actions" }, submit),
  );
  onSubmit(form, errors, async () => {
    if (codeField.hidden) {
      await api("POST", "/auth/otp/request", { email: email.value.trim() });
      sent.textContent = `If ${email.value.trim()} has an account, a 6-digit code is on its way. It works for 10 minutes.`;
      sent.hidden = false;
      codeField.hidden = false;
      code.required = true;
      submit.textContent = "Log in with the code";
      code.focus();
      return;
    }
    const body = { email: email.value.trim(), code: code.value.trim() };
    if (!totpField.hidden && totp.value.trim()) body.totp = totp.value.trim();
    try {
      await ctx.signIn(await api("POST", "/auth/otp/verify", body));
    } catch (error) {
      if (error instanceof ApiError && error.code === "totp_required" && totpField.hidden) {
        totpField.hidden = false;
        totp.focus();
        return;
      }
      throw error;
    }
  });
  return form;
}

export function signupView(container, ctx) {
  const [nameField, name] = field("Name", { name: "name", autocomplete: "name", required: true, maxlength: 100 });
  const [emailField, email] = field("Email", { type: "email", name: "email", autocomplete: "email", required: true });
  const [passwordField, password] = field("Password", { type: "password", name: "password", autocomplete: "new-password", required: true, minlength: 10, "aria-describedby": "password-rule" });
  const errors = alertBox();
  const form = h("form", { class: "card", "aria-label": "Sign up" },
    h("h1", {}, "Create an account"),
    nameField, emailField, passwordField,
    h("p", { class: "hint", id: "password-rule" }, "At least 10 characters, mixing at least two of: lower case, upper case, digits, other characters."),
    errors,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign up")),
  );
  onSubmit(form, errors, async () => {
    await api("POST", "/auth/register", { name: name.value.trim(), email: email.value.trim(), password: password.value });
    await ctx.signIn(await api("POST", "/auth/login", { email: email.value.trim(), password: password.value }));
  });
  container.append(form, h("p", { class: "center" }, "Already have an account? ", h("a", { href: "#/login" }, "Log in")));
  name.focus();
}
