// The account: name, password, two-factor authentication, signing out everywhere.

import { api, session } from "../api.js";
import { alertBox, field, h, onSubmit, replace } from "./dom.js";

export function accountView(container, ctx) {
  const me = session.me;
  container.append(
    h("h1", {}, "Account"),
    h("p", {}, `Signed in as ${me.email || me.name}.`),
    renameForm(ctx),
    passwordForm(),
    twoFactorSection(ctx),
    signOutSection(ctx),
  );
}

function renameForm(ctx) {
  const [nameField, name] = field("Name", { name: "name", value: session.me.name, required: true, maxlength: 100, autocomplete: "name" });
  const done = h("p", { class: "hint", role: "status" });
  const errors = alertBox();
  const form = h("form", { class: "card", "aria-label": "Your name" },
    h("h2", {}, "Your name"), nameField, errors, done,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Rename")));
  onSubmit(form, errors, async () => {
    done.textContent = "";
    await api("PATCH", "/me", { name: name.value.trim() });
    await ctx.reloadMe();
    done.textContent = "Name saved.";
  });
  return form;
}

function passwordForm() {
  const [currentField, current] = field("Current password", { type: "password", name: "current-password", autocomplete: "current-password", required: true });
  const [newField, next] = field("New password", { type: "password", name: "new-password", autocomplete: "new-password", required: true, minlength: 10 });
  const done = h("p", { class: "hint", role: "status" });
  const errors = alertBox();
  const form = h("form", { class: "card", "aria-label": "Change password" },
    h("h2", {}, "Password"), currentField, newField, errors, done,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Change password")));
  onSubmit(form, errors, async () => {
    done.textContent = "";
    await api("POST", "/auth/password/change", { current_password: current.value, new_password: next.value });
    form.reset();
    done.textContent = "Password changed. Your other sign-ins have been logged out.";
  });
  return form;
}

function twoFactorSection(ctx) {
  const section = h("section", { class: "card", "aria-labelledby": "twofa-title" });
  const render = () => {
    replace(section, h("h2", { id: "twofa-title" }, "Two-factor authentication"));
    if (session.me.totp_enabled) renderEnabled(section, ctx, render);
    else renderDisabled(section, ctx, render);
  };
  render();
  return section;
}

function renderDisabled(section, ctx, rerender) {
  const errors = alertBox();
  const start = h("button", { type: "button" }, "Set up two-factor authentication");
  start.addEventListener("click", async () => {
    errors.hidden = true;
    try {
      showSetup(section, ctx, rerender, await api("POST", "/auth/2fa/setup", {}));
    } catch (error) {
      errors.textContent = error.message;
      errors.hidden = false;
    }
  });
  section.append(h("p", {}, "Off. With it on, logging in also asks for a code from an authenticator app."), errors, start);
}

function showSetup(section, ctx, rerender, setup) {
  const [codeField, code] = field("Code from the app", { name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true });
  const errors = alertBox();
  const form = h("form", { "aria-label": "Turn on two-factor authentication" },
    codeField, errors,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Turn on")));
  replace(section,
    h("h2", { id: "twofa-title" }, "Two-factor authentication"),
    h("p", {}, "Scan this code with your authenticator app, or type the secret in by hand. Then enter the code the app shows."),
    qrFigure(setup.qr_svg),
    h("p", {}, "Secret: ", h("code", { "data-testid": "totp-secret" }, setup.secret)),
    h("p", { class: "hint" }, "Link: ", h("code", { "data-testid": "otpauth-uri", class: "wrap" }, setup.otpauth_uri)),
    form,
  );
  onSubmit(form, errors, async () => {
    const { backup_codes: codes } = await api("POST", "/auth/2fa/enable", { code: code.value.trim() });
    await ctx.reloadMe();
    replace(section,
      h("h2", { id: "twofa-title" }, "Two-factor authentication is on"),
      h("p", { role: "status" }, "Keep these backup codes somewhere safe. Each works once, in place of a code from the app. They are shown only now."),
      h("ul", { class: "codes", "aria-label": "Backup codes" }, codes.map((c) => h("li", {}, h("code", {}, c)))),
      h("button", { type: "button", onclick: rerender }, "Done"),
    );
  });
  code.focus();
}

// The server's QR code, imported as an SVG element only: no script, no handlers, no links.
function qrFigure(svgText) {
  const parsed = new DOMParser().parseFromString(svgText, "image/svg+xml");
  const svg = parsed.documentElement;
  const figure = h("figure", { class: "qr", "data-testid": "qr" });
  if (svg.namespaceURI !== "http://www.w3.org/2000/svg" || svg.localName !== "svg") {
    figure.append(h("p", { class: "error" }, "The QR code could not be shown; use the secret below."));
    return figure;
  }
  for (const bad of svg.querySelectorAll("script, foreignObject, a, iframe, use, image")) bad.remove();
  for (const element of [svg, ...svg.querySelectorAll("*")]) {
    for (const attribute of [...element.attributes]) {
      const name = attribute.name.toLowerCase();
      if (name.startsWith("on") || name.includes("href") || name === "style") element.removeAttribute(attribute.name);
    }
  }
  const imported = document.importNode(svg, true);
  imported.setAttribute("role", "img");
  imported.setAttribute("aria-label", "QR code for your authenticator app");
  figure.append(imported);
  return figure;
}

function renderEnabled(section, ctx, rerender) {
  const [codeField, code] = field("Code from the app, or a backup code", { name: "disable-code", autocomplete: "one-time-code", required: true });
  const errors = alertBox();
  const form = h("form", { "aria-label": "Turn off two-factor authentication" },
    codeField, errors,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "danger" }, "Turn off")));
  onSubmit(form, errors, async () => {
    await api("POST", "/auth/2fa/disable", { code: code.value.trim() });
    await ctx.reloadMe();
    rerender();
  });
  section.append(h("p", {}, "On. Logging in asks for a code from your authenticator app."), form);
}

function signOutSection(ctx) {
  const errors = alertBox();
  const everywhere = h("button", { type: "button", class: "danger" }, "Log out everywhere");
  everywhere.addEventListener("click", async () => {
    try {
      await ctx.signOut({ everywhere: true });
    } catch (error) {
      errors.textContent = error.message;
      errors.hidden = false;
    }
  });
  return h("section", { class: "card", "aria-labelledby": "signout-title" },
    h("h2", { id: "signout-title" }, "Sign-ins"),
    h("p", {}, "Log out on every device and browser where you are signed in, this one included."),
    errors, everywhere);
}
