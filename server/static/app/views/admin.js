// For server administrators: the live actor tree, refreshed every 2 seconds.

import { api } from "../api.js";
import { alertBox, h, replace, showError, clearError } from "./dom.js";

const REFRESH_MS = 2000;

export function adminView(container) {
  const tree = h("div", { class: "tree", "aria-live": "off" });
  const updated = h("p", { class: "hint" });
  const errors = alertBox();
  container.append(
    h("h1", {}, "Actors"),
    h("p", {}, "Every live actor of this server instance: supervisors and their children, with mailbox depth and size and how often each was restarted."),
    updated, errors, tree);
  let timer = null;
  let stopped = false;
  const refresh = async () => {
    try {
      const { items } = await api("GET", "/admin/actors");
      clearError(errors);
      replace(tree, nodes(items));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    } catch (error) {
      showError(errors, error);
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  };
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function nodes(items) {
  return h("ul", { role: "list" }, items.map((node) => h("li", { class: `actor state-${node.state}` },
    h("div", { class: "actor-row" },
      h("strong", { class: "actor-name" }, node.name),
      h("span", { class: "badge" }, node.kind),
      h("span", { class: "badge" }, node.state),
      node.mailbox_size !== null && h("span", {}, `mailbox ${node.mailbox_depth}/${node.mailbox_size}`),
      h("span", {}, `restarts ${node.restarts}`),
      h("span", { class: "muted" }, `age ${Math.round(node.age_seconds)} s`)),
    node.children.length > 0 && nodes(node.children))));
}
