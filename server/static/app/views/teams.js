// Teams: the list, one team's members and invitations, and accepting an invitation.

import { api, session } from "../api.js";
import { alertBox, field, h, onSubmit, replace, showError } from "./dom.js";

const ROLES = ["member", "admin", "owner"];
const RANK = { member: 0, admin: 1, owner: 2 };

export async function teamsView(container, ctx) {
  await ctx.reloadTeams(); // someone may have added us to a team since
  const list = h("ul", { class: "list", "aria-label": "Your teams" });
  const [nameField, name] = field("Team name", { name: "team-name", required: true, maxlength: 100 });
  const errors = alertBox();
  const form = h("form", { class: "card", "aria-label": "Create a team" },
    h("h2", {}, "Create a team"), nameField, errors,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create team")));
  const render = () => replace(list, ctx.teams.map((team) => h("li", {},
    h("a", { href: `#/teams/${team.id}` }, team.name),
    h("span", { class: "muted" }, team.personal ? " personal · " : " ", team.role),
    h("span", { class: "row-actions" },
      h("a", { href: `#/teams/${team.id}/rooms` }, "Rooms"),
      h("a", { href: `#/billing/${team.id}` }, "Billing")),
  )));
  onSubmit(form, errors, async () => {
    const team = await api("POST", "/teams", { name: name.value.trim() });
    await ctx.reloadTeams();
    ctx.navigate(`#/teams/${team.id}`);
  });
  render();
  container.append(h("h1", {}, "Teams"), list, form);
}

export async function teamView(container, ctx, teamId) {
  const team = await api("GET", `/teams/${encodeURIComponent(teamId)}`);
  const manager = team.role === "owner" || team.role === "admin";
  const members = h("section", { class: "card", "aria-labelledby": "members-title" });
  container.append(
    h("h1", {}, team.name),
    h("p", {}, `Your role: ${team.role}. `, h("a", { href: `#/teams/${team.id}/rooms` }, "Open the rooms"), " · ", h("a", { href: `#/billing/${team.id}` }, "Billing")),
    members,
  );
  const reload = async (done) => renderMembers(members, ctx, team, manager, reload, done);
  await reload();
  if (manager && !team.personal) container.append(inviteForm(team), settingsForm(ctx, team));
  if (team.personal) container.append(h("p", { class: "hint" }, "This is your personal team: it has only you. Create a team to work with others."));
}

async function renderMembers(section, ctx, team, manager, reload, done) {
  const page = await api("GET", `/teams/${team.id}/members?limit=200`);
  const errors = alertBox();
  const status = h("p", { class: "hint", role: "status" }, done || "");
  const rows = page.items.map((member) => memberRow(ctx, team, member, manager, errors, reload));
  replace(section,
    h("h2", { id: "members-title" }, "Members"),
    errors, status,
    h("table", { class: "members" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Email"), h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, rows)));
}

function memberRow(ctx, team, member, manager, errors, reload) {
  const self = member.user.id === session.me.id;
  const mayChange = manager && !team.personal && (team.role === "owner" || member.role !== "owner");
  const run = async (action, done) => {
    try {
      await action();
      await reload(done);
    } catch (error) {
      showError(errors, error);
    }
  };
  let role = member.role;
  if (mayChange) {
    const choices = ROLES.filter((r) => team.role === "owner" || RANK[r] <= RANK.admin);
    const select = h("select", { "aria-label": `Role of ${member.user.name}` },
      choices.map((r) => h("option", { value: r, selected: r === member.role }, r)));
    select.addEventListener("change", () => run(
      () => api("PATCH", `/teams/${team.id}/members/${member.user.id}`, { role: select.value }),
      `${member.user.name} is now ${select.value}.`,
    ));
    role = select;
  }
  const mayRemove = !team.personal && (self || (manager && (team.role === "owner" || member.role !== "owner")));
  const remove = mayRemove && h("button", {
    type: "button", class: "danger small",
    onclick: () => run(async () => {
      await api("DELETE", `/teams/${team.id}/members/${member.user.id}`);
      if (self) {
        await ctx.reloadTeams();
        ctx.navigate("#/teams");
      }
    }, `${member.user.name} was removed from the team.`),
  }, self ? "Leave team" : `Remove ${member.user.name}`);
  return h("tr", {},
    h("td", {}, member.user.name, self ? " (you)" : ""),
    h("td", {}, member.user.email || ""),
    h("td", {}, role),
    h("td", {}, remove || ""));
}

function inviteForm(team) {
  const [emailField, email] = field("Email to invite", { type: "email", name: "invite-email", required: true });
  const roleSelect = h("select", { id: "invite-role", name: "invite-role" },
    ROLES.filter((r) => team.role === "owner" || r !== "owner").map((r) => h("option", { value: r }, r)));
  const errors = alertBox();
  const result = h("div", { class: "invite-result" });
  const form = h("form", { class: "card", "aria-label": "Invite someone" },
    h("h2", {}, "Invite someone"), emailField,
    h("div", { class: "field" }, h("label", { for: "invite-role" }, "Role"), roleSelect),
    errors,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create invitation")),
    result);
  onSubmit(form, errors, async () => {
    const invitation = await api("POST", `/teams/${team.id}/invitations`, { email: email.value.trim(), role: roleSelect.value });
    showInviteLink(result, invitation);
    email.value = "";
  });
  return form;
}

function showInviteLink(result, invitation) {
  const link = `${location.origin}/#/invite/${encodeURIComponent(invitation.token)}`;
  const input = h("input", { id: "invite-link", readonly: true, value: link });
  const copied = h("span", { class: "hint", role: "status" });
  const copy = h("button", { type: "button" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(link);
      copied.textContent = "Copied.";
    } catch {
      input.focus();
      input.select();
      copied.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
    }
  });
  replace(result,
    h("p", {}, `Invitation for ${invitation.email} as ${invitation.role}, valid until ${new Date(invitation.expires_at).toLocaleDateString()}. It was emailed too; you may also share this link:`),
    h("div", { class: "field" }, h("label", { for: "invite-link" }, "Invitation link"), h("div", { class: "inline" }, input, copy)),
    copied);
}

// Rename (admins and owners) and delete (owners) a team.
function settingsForm(ctx, team) {
  const [nameField, name] = field("New team name", { name: "rename-team", value: team.name, required: true, maxlength: 100 });
  const errors = alertBox();
  const form = h("form", { class: "card", "aria-label": "Team settings" },
    h("h2", {}, "Team settings"), nameField, errors,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Rename team")));
  onSubmit(form, errors, async () => {
    await api("PATCH", `/teams/${team.id}`, { name: name.value.trim() });
    await ctx.reloadTeams();
    ctx.navigate("#/teams");
  });
  if (team.role === "owner") {
    const remove = h("button", { type: "button", class: "danger" }, "Delete team");
    remove.addEventListener("click", async () => {
      if (remove.dataset.armed !== "yes") {
        remove.dataset.armed = "yes";
        remove.textContent = "Delete the team, its rooms and messages for good";
        return;
      }
      try {
        await api("DELETE", `/teams/${team.id}`);
        await ctx.reloadTeams();
        ctx.navigate("#/teams");
      } catch (error) {
        showError(errors, error);
      }
    });
    form.append(h("div", { class: "actions" }, remove));
  }
  return form;
}

export function inviteView(container, ctx, token) {
  const errors = alertBox();
  const accept = h("button", { type: "button", class: "primary" }, "Accept invitation");
  accept.addEventListener("click", async () => {
    accept.disabled = true;
    try {
      const team = await api("POST", `/invitations/${encodeURIComponent(token)}/accept`);
      await ctx.reloadTeams();
      ctx.navigate(`#/teams/${team.id}`);
    } catch (error) {
      showError(errors, error.status === 404
        ? "This invitation is not valid: it may have expired, been used, or been sent to another email address."
        : error);
      accept.disabled = false;
    }
  });
  container.append(h("section", { class: "card" },
    h("h1", {}, "Join a team"),
    h("p", {}, `You have been invited to a team. Accept to join it as ${session.me.name}.`),
    errors, accept));
}
