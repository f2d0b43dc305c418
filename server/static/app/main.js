// The web app's shell: sign-in state, the one realtime Client, navigation and the
// hash router. Screens live in views/*.js; rooms and chat in chat.js.

import { api, ApiError, onExpired, session } from "./api.js";
import { Client, RefreshingToken } from "./roomcast.js";
import { h, replace } from "./views/dom.js";
import { loginView, signupView } from "./views/login.js";
import { accountView } from "./views/account.js";
import { teamsView, teamView, inviteView } from "./views/teams.js";
import { billingView } from "./views/billing.js";
import { adminView } from "./views/admin.js";

const STORAGE_KEY = "roomcast.tokens";
const PENDING_KEY = "roomcast.after-login";
const NOTICE_KEY = "roomcast.notice"; // why the user was logged out, shown on the login page
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const banner = document.getElementById("banner");

let teams = [];          // GET /teams, refreshed on sign-in and when a screen changes them
let currentTeamId = null;
let unmountView = null;  // cleanup of the screen on show
let chatView = null;     // { view, teamId } while a chat route is mounted
let routeSeq = 0;        // which route() call is current; a slower older one gives way

const ROUTES = [
  [/^#\/login$/, false, (c) => loginView(c, shell)],
  [/^#\/signup$/, false, (c) => signupView(c, shell)],
  [/^#\/invite\/([^/]+)$/, true, (c, token) => inviteView(c, shell, decodeURIComponent(token))],
  [/^#\/account$/, true, (c) => accountView(c, shell)],
  [/^#\/teams$/, true, (c) => teamsView(c, shell)],
  [/^#\/teams\/([^/]+)$/, true, (c, teamId) => teamView(c, shell, teamId)],
  [/^#\/teams\/([^/]+)\/rooms(?:\/([^/]+))?$/, true, (c, teamId, roomId) => chatRoute(c, teamId, roomId || null)],
  [/^#\/billing\/([^/]+)$/, true, (c, teamId) => billingView(c, shell, teamId)],
  [/^#\/admin$/, true, (c) => adminView(c, shell)],
];

// What the screens get: navigation and the sign-in state they may change.
const shell = {
  navigate: (hash) => { location.hash = hash; },
  signIn,
  signOut,
  reloadMe,
  reloadTeams,
  get teams() { return teams; },
  team: (teamId) => teams.find((t) => t.id === teamId) || null,
};

async function signIn(tokens) {
  await startSession(tokens);
  const pending = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  if (pending) location.hash = pending;
  else location.hash = teams.length ? `#/teams/${teams[0].id}/rooms` : "#/teams";
}

async function startSession(tokens) {
  session.tokens = new RefreshingToken("", tokens, {
    onChange: (pair) => localStorage.setItem(STORAGE_KEY, JSON.stringify(pair)),
  });
  localStorage.setItem(STORAGE_KEY, JSON.stringify(tokens));
  session.me = await api("GET", "/me");
  await reloadTeams();
  await startClient();
  sessionStorage.removeItem(NOTICE_KEY);
  renderNav();
}

async function startClient() {
  // forceRefresh (after the server refused the token with 4401) spends the refresh token.
  const client = new Client("", (options) => session.tokens.token(options));
  session.client = client;
  let wasOpen = false;
  client.on("state", ({ state, code }) => {
    if (session.client !== client) return;
    if (state === "open") {
      wasOpen = true;
      showBanner(null);
    } else if ((state === "reconnecting" || state === "connecting") && wasOpen) {
      showBanner("Reconnecting…");
    } else if (state === "closed") {
      clientClosed(client, code);
    }
  });
  await client.connect();
}

// The server closed for good: a revoked sign-in (4401) signs out; anything else says so.
async function clientClosed(client, code) {
  if (session.client !== client) return;
  try {
    await api("GET", "/me");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      await endSession("Your sign-in has ended. Please log in again.");
      return;
    }
  }
  if (code === 4401) {
    // The sign-in is still good (a password change closes every socket): connect again,
    // and mount the screen afresh so it uses the new client, not the closed one.
    await startClient();
    unmount();
    route();
  } else {
    showBanner("Disconnected from the server. Reload the page to try again.");
  }
}

// Logged out here at once (so no screen acts on the old sign-in meanwhile), then the
// server revokes it, with the access token it had.
async function signOut({ everywhere = false } = {}) {
  const { tokens } = session;
  await endSession(null);
  if (!tokens) return;
  try {
    const token = await tokens.token();
    if (everywhere) await api("POST", "/auth/logout-all", {}, { token });
    else await api("POST", "/auth/logout", { refresh_token: tokens.tokens.refresh_token }, { token });
  } catch (error) {
    if (error.status !== 401) showBanner(`Logged out here, but the server could not be told: ${error.message}`);
  }
}

async function endSession(message) {
  const client = session.client;
  unmount();
  Object.assign(session, { me: null, tokens: null, client: null });
  localStorage.removeItem(STORAGE_KEY);
  teams = [];
  renderNav();
  showBanner(null);
  if (client) await client.close().catch(() => {});
  if (message) sessionStorage.setItem(NOTICE_KEY, message);
  if (location.hash === "#/login") route();
  else location.hash = "#/login";
}

async function reloadMe() {
  session.me = await api("GET", "/me");
  renderNav();
  return session.me;
}

async function reloadTeams() {
  const page = await api("GET", "/teams?limit=200");
  teams = page.items;
  if (!teams.some((t) => t.id === currentTeamId)) currentTeamId = teams.length ? teams[0].id : null;
  renderNav();
  return teams;
}

function showBanner(text) {
  banner.textContent = text || "";
  banner.hidden = !text;
}

function renderNav() {
  nav.hidden = !session.me;
  if (!session.me) {
    nav.replaceChildren();
    return;
  }
  const hash = location.hash;
  const link = (href, label, current) => h("a", { href, "aria-current": current ? "page" : null }, label);
  replace(nav,
    currentTeamId && link(`#/teams/${currentTeamId}/rooms`, "Rooms", /^#\/teams\/[^/]+\/rooms/.test(hash)),
    link("#/teams", "Teams", /^#\/teams(\/[^/]+)?$/.test(hash)),
    link("#/account", "Account", hash === "#/account"),
    currentTeamId && link(`#/billing/${currentTeamId}`, "Billing", hash.startsWith("#/billing/")),
    session.me.role === "admin" && link("#/admin", "Admin", hash === "#/admin"),
    h("button", { type: "button", class: "link", onclick: () => signOut() }, "Log out"),
  );
}

function unmount() {
  if (chatView) {
    chatView.view.unmount();
    chatView = null;
  }
  if (unmountView) {
    const cleanup = unmountView;
    unmountView = null;
    cleanup();
  }
}

async function chatRoute(container, teamId, roomId) {
  const seq = routeSeq;
  if (!shell.team(teamId)) await reloadTeams(); // joined since we last looked?
  const team = shell.team(teamId);
  if (!team) {
    container.append(h("p", { role: "alert", class: "error" }, "No such team, or you are not a member of it."));
    return;
  }
  const { mountChat } = await import("./chat.js");
  if (seq !== routeSeq) return; // the user went elsewhere while chat.js loaded
  const view = mountChat(container, {
    api, client: session.client, me: session.me, teamId, roomId, team, navigate: shell.navigate,
  });
  chatView = { view, teamId };
}

async function route() {
  const hash = location.hash || "#/";
  const signedIn = session.me !== null;
  const match = ROUTES.map(([pattern, needsLogin, render]) => [hash.match(pattern), needsLogin, render])
    .find(([found]) => found);
  if (!match) {
    location.hash = signedIn ? (currentTeamId ? `#/teams/${currentTeamId}/rooms` : "#/teams") : "#/login";
    return;
  }
  const [found, needsLogin, render] = match;
  if (needsLogin && !signedIn) {
    sessionStorage.setItem(PENDING_KEY, hash);
    location.hash = "#/login";
    return;
  }
  if (!needsLogin && signedIn) {
    location.hash = currentTeamId ? `#/teams/${currentTeamId}/rooms` : "#/teams";
    return;
  }
  const teamId = hash.match(/^#\/(?:teams|billing)\/([^/]+)/);
  if (teamId && shell.team(teamId[1])) currentTeamId = teamId[1];
  // Switching rooms within the team the chat shows: let chat.js switch if it can.
  const isChat = /^#\/teams\/[^/]+\/rooms/.test(hash);
  if (isChat && chatView && found[1] === chatView.teamId && typeof chatView.view.show === "function") {
    chatView.view.show(found[2] || null);
    renderNav();
    return;
  }
  unmount();
  const seq = ++routeSeq;
  const container = h("div", { class: "view" });
  replace(main, container);
  const notice = sessionStorage.getItem(NOTICE_KEY); // kept until the next sign-in
  if (notice && !signedIn) container.append(h("p", { class: "notice", role: "status" }, notice));
  renderNav();
  try {
    const cleanup = await render(container, ...found.slice(1));
    if (typeof cleanup === "function") {
      if (seq === routeSeq) unmountView = cleanup;
      else cleanup();
    }
  } catch (error) {
    container.append(h("p", { class: "error", role: "alert" }, error.message || String(error)));
  }
  // A new screen: keyboard and screen reader users start at its top, unless it focused a field.
  if (seq === routeSeq && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

// Stripe returns the browser to /teams/<id>/billing (?checkout=success after paying).
function arrivedFromStripe() {
  const found = location.pathname.match(/^\/teams\/([^/]+)\/billing$/);
  if (!found) return;
  if (new URLSearchParams(location.search).get("checkout") === "success") {
    sessionStorage.setItem("roomcast.checkout", "success");
  }
  history.replaceState(null, "", `/#/billing/${found[1]}`);
}

async function start() {
  arrivedFromStripe();
  onExpired(() => endSession("Your sign-in has ended. Please log in again."));
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored) {
    try {
      await startSession(JSON.parse(stored));
    } catch (error) {
      if (session.client) await session.client.close().catch(() => {});
      Object.assign(session, { me: null, tokens: null, client: null });
      // Only a refused sign-in is forgotten; an unreachable server is tried again on reload.
      if (error.status === 401 || error.name === "AuthenticationError") localStorage.removeItem(STORAGE_KEY);
      else sessionStorage.setItem(NOTICE_KEY, "The server cannot be reached right now. Reload the page to try again.");
    }
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
