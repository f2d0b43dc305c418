// Billing for one team: its plan and subscription, the caller's AI usage, and the way
// to Stripe's checkout and billing portal.

import { api, ApiError } from "../api.js";
import { alertBox, h, showError, when } from "./dom.js";

export async function billingView(container, ctx, teamId) {
  const id = encodeURIComponent(teamId);
  const [team, subscription, usage, plans] = await Promise.all([
    api("GET", `/teams/${id}`),
    api("GET", `/teams/${id}/subscription`),
    api("GET", "/usage"),
    api("GET", "/billing/plans"),
  ]);
  const planName = (planId) => (plans.find((p) => p.id === planId) || { name: planId }).name;
  const manager = team.role === "owner" || team.role === "admin";
  const paid = sessionStorage.getItem("roomcast.checkout") === "success";
  sessionStorage.removeItem("roomcast.checkout");
  container.append(
    h("h1", {}, `Billing: ${team.name}`),
    paid && h("p", { class: "notice", role: "status" }, "Thank you: your payment went through. The plan below changes to Pro as soon as the payment provider confirms it."),
    h("section", { class: "card", "aria-labelledby": "plan-title" },
      h("h2", { id: "plan-title" }, "Plan"),
      h("dl", { class: "facts" },
        h("dt", {}, "Plan"), h("dd", { "data-testid": "plan" }, planName(subscription.plan)),
        h("dt", {}, "Status"), h("dd", {}, subscription.status),
        subscription.current_period_end && [h("dt", {}, "Current period ends"), h("dd", {}, when(subscription.current_period_end))],
        subscription.cancel_at_period_end && [h("dt", {}, "Cancels"), h("dd", {}, "at the end of the period")]),
      !subscription.payments_available ? notSetUp()
        : manager ? providerButtons(id, subscription)
          : h("p", { class: "hint" }, "Only the team's owners and admins manage its billing.")),
    h("section", { class: "card", "aria-labelledby": "usage-title" },
      h("h2", { id: "usage-title" }, "Your AI usage today"),
      h("p", {}, `${usage.ai_prompts_today} of ${usage.daily_ai_prompts} prompts (${planName(usage.plan)} plan, your best among your teams). Resets ${when(usage.resets_at)}.`),
      h("progress", { max: usage.daily_ai_prompts, value: usage.ai_prompts_today, "aria-label": "AI prompts used today" })),
    h("section", { class: "card", "aria-labelledby": "plans-title" },
      h("h2", { id: "plans-title" }, "Plans"),
      h("ul", { class: "list" }, plans.map((p) => h("li", {}, h("strong", {}, p.name), ` — ${p.daily_ai_prompts} AI prompts a day, ${p.price}`)))),
  );
}

function notSetUp() {
  return h("p", { class: "notice", role: "alert" }, "Payments are not set up on this server, so plans cannot be changed here. Ask the server's operator.");
}

function providerButtons(teamId, subscription) {
  const errors = alertBox();
  const live = ["active", "trialing", "past_due"].includes(subscription.status) && subscription.plan === "pro";
  const go = (path, body) => async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const { url } = await api("POST", path, body);
      window.location.assign(url);
    } catch (error) {
      if (error instanceof ApiError && error.code === "unavailable" && /not configured/i.test(error.message)) {
        buttons.replaceWith(notSetUp());
        return;
      }
      showError(errors, error);
      button.disabled = false;
    }
  };
  const buttons = h("div", { class: "actions" },
    !live && h("button", { type: "button", class: "primary", onclick: go(`/teams/${teamId}/billing/checkout`, { plan: "pro" }) }, "Upgrade to Pro"),
    h("button", { type: "button", onclick: go(`/teams/${teamId}/billing/portal`, {}) }, "Manage billing"));
  return h("div", {}, buttons, errors);
}
