// The chat screen: a team's rooms with unread counts, and the open room's history, live
// messages, the assistant's streamed answers, presence, typing and the composer.
//
// Every room of the team is joined on the one websocket while the screen is mounted, so
// unread counts and presence stay live; the last seq read per room is kept in
// localStorage, so counts also survive a reload. Messages are keyed by `seq` (history and
// live events overlap; each seq is drawn once); sends are keyed by their `client_id` until
// acked. See docs/protocol.md, sections 3 to 5.

import { h } from "./views/dom.js";

const PAGE = 50;
const TYPING_SHOWN_MS = 4000;
const TYPING_EVERY_MS = 2000;
const JOINS_AT_ONCE = 8;
const MANAGERS = new Set(["owner", "admin"]);
const MODES = [
  ["mention", "When asked"],
  ["auto", "Every message"],
  ["off", "Off"],
];
const FINISHED = {
  cancelled: "stopped",
  length: "cut off at the length limit",
  safety: "stopped by the safety filters",
};


let unique = 0;
const uid = (prefix) => `${prefix}-${++unique}`;

function newClientId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function field(label, control) {
  const id = control.id || uid("f");
  control.id = id;
  return h("div", { class: "chat-field" }, h("label", { for: id }, label), control);
}

function modeSelect(selected) {
  return h(
    "select",
    { name: "assistant" },
    MODES.map(([value, label]) => h("option", { value, selected: value === selected }, label)),
  );
}

function timeOf(ts) {
  const date = new Date(ts);
  if (Number.isNaN(date.getTime())) return null;
  const today = date.toDateString() === new Date().toDateString();
  const shown = today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  return h("time", { datetime: ts, title: date.toLocaleString() }, shown);
}

function errorText(error) {
  return (error && error.message) || "Something went wrong. Try again.";
}

/** Mount the chat for `ctx.teamId` into `container`; returns {show(roomId), unmount()}. */
export function mountChat(container, ctx) {
  return new ChatView(container, ctx);
}

class ChatView {
  constructor(container, ctx) {
    this.container = container;
    this.ctx = ctx;
    this.client = ctx.client;
    this.me = ctx.me || {};
    this.canManage = MANAGERS.has(ctx.team?.role);
    this.rooms = new Map(); // id -> {room, latest, read, joined: Promise, members, link...}
    this.streams = new Map(); // gen -> {room, gen, replyTo, text, and its bubble once drawn}
    this.pending = new Map(); // client_id -> {room, body, ai, error, and its bubble}
    this.typists = new Map(); // user id -> {name, timer}
    this.open = null; // {id, bySeq: Map seq -> element, cursor, loading, ready}
    this.lastTyping = 0;
    this.wasOpen = ctx.client?.state === "open"; // so the next "open" is a reconnect
    this.loaded = false;
    this.wanted = ctx.roomId ?? null;
    this.gone = false;
    this.handlers = {
      message: (e) => this.onMessage(e),
      "ai.start": (e) => this.onAiStart(e),
      "ai.delta": (e) => this.onAiDelta(e),
      "ai.end": (e) => this.onAiEnd(e),
      "ai.error": (e) => this.onAiError(e),
      presence: (e) => this.onPresence(e),
      typing: (e) => this.onTyping(e),
      left: (e) => this.onLeft(e),
      state: (e) => this.onState(e),
      error: (e) => this.onRefusedAnswer(e),
    };
    for (const [kind, handler] of Object.entries(this.handlers)) this.client?.on(kind, handler);
    this.build();
    this.start();
  }

  // ---- layout -------------------------------------------------------------------------

  build() {
    this.list = h("ul", { class: "chat-room-list" });
    this.listStatus = h("p", { class: "chat-muted", role: "status" }, "Loading rooms…");
    this.roomPane = h("section", { class: "chat-room", "aria-label": "Room" });
    this.root = h(
      "div",
      { class: "chat" },
      h(
        "nav",
        { class: "chat-rooms", "aria-label": "Rooms" },
        h("h2", {}, "Rooms"),
        this.listStatus,
        this.list,
        this.buildCreateForm(),
      ),
      this.roomPane,
    );
    this.container.replaceChildren(this.root);
  }

  buildCreateForm() {
    const personal = Boolean(this.ctx.team?.personal);
    const name = h("input", { name: "name", required: true, maxlength: 100, autocomplete: "off" });
    const mode = modeSelect(personal ? "auto" : "mention");
    const prompt = h("textarea", { name: "system_prompt", rows: 3, maxlength: 8000 });
    const error = h("p", { class: "chat-error", role: "alert" });
    const form = h(
      "form",
      { class: "chat-form", "aria-label": "New room" },
      field("Room name", name),
      field("Assistant answers", mode),
      field("Assistant instructions (optional)", prompt),
      h("button", { type: "submit" }, "Create room"),
      error,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const body = { name: name.value.trim(), assistant: mode.value };
      if (prompt.value.trim()) body.system_prompt = prompt.value;
      try {
        const room = await this.ctx.api("POST", `/teams/${this.ctx.teamId}/rooms`, body);
        form.reset();
        mode.value = personal ? "auto" : "mention";
        this.details.open = false;
        this.addRoom(room);
        this.go(room.id);
      } catch (e) {
        error.textContent = errorText(e);
      }
    });
    this.details = h("details", { class: "chat-new-room" }, h("summary", {}, "New room"), form);
    return this.details;
  }

  go(roomId) {
    const hash = `#/teams/${this.ctx.teamId}/rooms${roomId ? `/${roomId}` : ""}`;
    if (location.hash === hash) this.show(roomId);
    else this.ctx.navigate(hash);
  }

  // ---- rooms --------------------------------------------------------------------------

  async start() {
    try {
      await this.loadRooms();
      if (this.gone) return;
      this.listStatus.textContent = this.rooms.size ? "" : "No rooms yet. Create the first one.";
      this.joinAll();
    } catch (e) {
      this.listStatus.textContent = `Rooms could not be loaded: ${errorText(e)}`;
    }
    this.loaded = true;
    this.show(this.wanted);
    document.addEventListener("visibilitychange", this.onVisible);
  }

  // Rooms are not announced on the websocket: others' new rooms and new names are read
  // again when the page comes back into view or the connection comes back.
  onVisible = () => {
    if (document.visibilityState === "visible") this.refreshRooms();
  };

  async refreshRooms() {
    if (!this.loaded || this.gone || Date.now() - (this.refreshedAt ?? 0) < 5000) return;
    this.refreshedAt = Date.now();
    try {
      await this.loadRooms();
    } catch {
      // the list stays as it was; the next look tries again
    }
  }

  async loadRooms() {
    let cursor = null;
    do {
      const query = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : "?limit=200";
      const page = await this.ctx.api("GET", `/teams/${this.ctx.teamId}/rooms${query}`);
      if (this.gone) return;
      for (const room of page.items) this.upsertRoom(room);
      cursor = page.next_cursor;
    } while (cursor);
  }

  upsertRoom(room) {
    const entry = this.rooms.get(room.id);
    if (!entry) {
      this.addRoom(room, this.loaded);
      return;
    }
    entry.room = room;
    entry.label.textContent = room.name;
    entry.latest = Math.max(entry.latest, room.last_seq);
    this.renderBadge(entry);
    if (this.open?.id === room.id) this.renderMode(entry);
  }

  addRoom(room, join = true) {
    if (this.rooms.has(room.id)) return;
    const badge = h("span", { class: "chat-unread", hidden: true });
    const label = h("span", { class: "chat-room-name" }, room.name);
    const link = h("a", { href: `#/teams/${this.ctx.teamId}/rooms/${room.id}` }, label, badge);
    const entry = {
      room,
      latest: room.last_seq,
      read: null,
      joined: null,
      members: new Map(),
      item: h("li", {}, link),
      link,
      label,
      badge,
    };
    this.rooms.set(room.id, entry);
    this.list.append(entry.item);
    this.listStatus.textContent = "";
    if (join) entry.joined = this.join(entry);
  }

  // Joins a few rooms at a time: the websocket allows bursts, not floods.
  async joinAll() {
    const waiting = [...this.rooms.values()].filter((entry) => !entry.joined);
    const next = async () => {
      for (let entry = waiting.shift(); entry; entry = waiting.shift()) {
        if (entry.joined) continue; // opened meanwhile, which joins it first
        entry.joined = this.join(entry);
        await entry.joined;
      }
    };
    await Promise.all(Array.from({ length: JOINS_AT_ONCE }, next));
  }

  // Resolves with the `joined` reply, or null when the room could not be joined.
  async join(entry) {
    const id = entry.room.id;
    let joined;
    try {
      joined = await this.client.join(id);
    } catch (e) {
      if (!this.gone && this.open?.id === id) {
        this.historyStatus.hidden = false;
        this.historyStatus.textContent = `Live updates for this room are off: ${errorText(e)}`;
      }
      return null;
    }
    if (this.gone) return joined;
    entry.stale = false;
    entry.members = new Map(joined.members.map((m) => [m.id, m.name]));
    entry.latest = Math.max(entry.latest, joined.seq);
    const stored = localStorage.getItem(this.readKey(id));
    entry.read = stored !== null && Number.isFinite(Number(stored)) ? Number(stored) : joined.seq;
    if (this.open?.id === id && this.open.ready) this.markRead();
    this.renderBadge(entry);
    this.renderPresence();
    return joined;
  }

  readKey(roomId) {
    return `roomcast.read.${this.me.id}.${roomId}`;
  }

  renderBadge(entry) {
    const unread = entry.read === null ? 0 : Math.max(0, entry.latest - entry.read);
    entry.badge.hidden = unread === 0;
    entry.badge.textContent = String(unread);
    entry.link.setAttribute(
      "aria-label",
      unread ? `${entry.room.name}, ${unread} unread` : entry.room.name,
    );
  }

  markRead() {
    const entry = this.rooms.get(this.open?.id);
    if (!entry || entry.read === null) return;
    entry.read = Math.max(entry.read, entry.latest);
    localStorage.setItem(this.readKey(entry.room.id), String(entry.read));
    this.renderBadge(entry);
  }

  dropRoom(roomId, why) {
    const entry = this.rooms.get(roomId);
    if (!entry) return;
    entry.item.remove();
    this.rooms.delete(roomId);
    localStorage.removeItem(this.readKey(roomId));
    if (this.open?.id === roomId) {
      this.open = null;
      this.notice(why);
      this.root.dataset.open = "false";
    }
  }

  // ---- the open room ------------------------------------------------------------------

  /** Show room `roomId` (null: none) without leaving the team's other rooms. */
  show(roomId) {
    this.wanted = roomId ?? null;
    if (this.gone || !this.loaded) return;
    for (const entry of this.rooms.values()) {
      if (entry.room.id === roomId) entry.link.setAttribute("aria-current", "page");
      else entry.link.removeAttribute("aria-current");
    }
    this.clearTypists();
    const entry = roomId ? this.rooms.get(roomId) : null;
    this.root.dataset.open = String(Boolean(entry));
    if (!entry) {
      this.open = null;
      if (roomId) this.findRoom(roomId);
      else this.notice("Choose a room, or create a new one.");
      return;
    }
    if (!entry.joined || entry.stale) entry.joined = this.join(entry);
    this.open = { id: roomId, bySeq: new Map(), cursor: null, loading: false, ready: false };
    this.renderRoom(entry);
    this.loadLatest(this.open, entry);
  }

  notice(text) {
    this.roomPane.replaceChildren(h("p", { class: "chat-notice", role: "status" }, text));
  }

  // A room made after the list was loaded (by someone else, say): look it up once.
  async findRoom(roomId) {
    this.notice("Loading the room…");
    try {
      const room = await this.ctx.api("GET", `/rooms/${roomId}`);
      if (this.gone || this.wanted !== roomId) return;
      if (room.team_id === this.ctx.teamId) {
        this.addRoom(room);
        this.show(roomId);
        return;
      }
    } catch {
      // not found, or not ours: said below
    }
    if (!this.gone && this.wanted === roomId) {
      this.notice("This room does not exist, or you are not a member of its team.");
    }
  }

  renderRoom(entry) {
    const room = entry.room;
    this.title = h("h2", { id: uid("room-title") }, room.name);
    this.modeNote = h("p", { class: "chat-muted chat-mode" });
    this.presence = h("p", { class: "chat-presence", "aria-label": "Online in this room" });
    this.older = h(
      "button",
      { type: "button", class: "chat-older", hidden: true },
      "Load older messages",
    );
    this.older.addEventListener("click", () => this.loadOlder());
    this.log = h("div", {
      class: "chat-log",
      role: "log",
      "aria-live": "polite",
      "aria-label": "Messages",
      "aria-relevant": "additions",
    });
    this.historyStatus = h("p", { class: "chat-muted", role: "status" }, "Loading messages…");
    this.scroller = h(
      "div",
      { class: "chat-scroll", tabindex: 0, "aria-label": "Message history" },
      this.older,
      this.historyStatus,
      this.log,
    );
    this.scroller.addEventListener("scroll", () => {
      if (this.scroller.scrollTop < 48) this.loadOlder();
    });
    this.typingLine = h("p", { class: "chat-typing", "aria-live": "polite" });
    this.answerAlert = h("p", { class: "chat-error", role: "alert" });
    this.roomPane.setAttribute("aria-labelledby", this.title.id);
    this.roomPane.replaceChildren(
      h(
        "header",
        { class: "chat-room-head" },
        h("a", { class: "chat-back", href: `#/teams/${this.ctx.teamId}/rooms` }, "‹ Rooms"),
        h("div", { class: "chat-room-title" }, this.title, this.modeNote),
        this.presence,
        this.canManage ? this.buildSettings(entry) : null,
      ),
      this.scroller,
      this.typingLine,
      this.answerAlert,
      this.buildComposer(entry),
    );
    this.renderMode(entry);
    this.renderPresence();
    for (const stream of this.streams.values()) {
      if (stream.room === room.id) this.drawStream(stream);
    }
    for (const [clientId, send] of this.pending) {
      if (send.room === room.id) this.drawPending(clientId, send);
    }
  }

  renderMode(entry) {
    const mode = entry.room.assistant;
    this.title.textContent = entry.room.name;
    this.modeNote.textContent =
      mode === "auto"
        ? "The assistant answers every message."
        : mode === "mention"
          ? "The assistant answers when asked."
          : "The assistant is off in this room.";
    if (this.askToggle) this.askToggle.hidden = mode !== "mention";
  }

  async loadLatest(open, entry) {
    try {
      // After the join, so that history reaches at least the seq live events start from.
      await entry.joined;
      const page = await this.ctx.api("GET", `/rooms/${open.id}/messages?limit=${PAGE}`);
      if (this.open !== open) return;
      this.log.setAttribute("aria-busy", "true"); // one announcement for the page, not 50
      this.historyStatus.textContent = page.items.length ? "" : "No messages yet.";
      this.historyStatus.hidden = page.items.length > 0;
      open.cursor = page.next_cursor;
      for (const message of page.items) this.drawMessage(message);
      open.ready = true;
      this.log.removeAttribute("aria-busy");
      for (const stream of this.streams.values()) {
        if (stream.room === open.id && stream.el) this.offerStop(stream);
      }
      this.older.hidden = !open.cursor;
      this.scrollToEnd();
      this.markRead();
    } catch (e) {
      if (this.open !== open) return;
      this.historyStatus.textContent = `Messages could not be loaded: ${errorText(e)}`;
    }
  }

  async loadOlder() {
    const open = this.open;
    if (!open || !open.ready || !open.cursor || open.loading) return;
    open.loading = true;
    this.older.disabled = true;
    try {
      const page = await this.ctx.api(
        "GET",
        `/rooms/${open.id}/messages?cursor=${encodeURIComponent(open.cursor)}`,
      );
      if (this.open !== open) return;
      // Keep what the reader sees in place while older messages go in above it.
      const before = this.scroller.scrollHeight - this.scroller.scrollTop;
      this.log.setAttribute("aria-busy", "true");
      for (const message of page.items) this.drawMessage(message);
      this.log.removeAttribute("aria-busy");
      this.scroller.scrollTop = this.scroller.scrollHeight - before;
      open.cursor = page.next_cursor;
      this.older.hidden = !open.cursor;
    } catch (e) {
      this.historyStatus.hidden = false;
      this.historyStatus.textContent = `Older messages could not be loaded: ${errorText(e)}`;
    } finally {
      open.loading = false;
      this.older.disabled = false;
    }
  }

  nearEnd() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  // Runs `draw`, then follows the conversation if the reader was at its end.
  following(draw) {
    const follow = this.nearEnd();
    const result = draw();
    if (follow) this.scrollToEnd();
    return result;
  }

  // ---- drawing messages ---------------------------------------------------------------

  bubble(kind, authorName, ts) {
    const body = h("div", { class: "chat-body" });
    const note = h("span", { class: "chat-note" });
    const actions = h("div", { class: "chat-actions" });
    const el = h(
      "article",
      { class: `chat-msg ${kind}` },
      h(
        "div",
        { class: "chat-meta" },
        h("span", { class: "chat-author" }, authorName),
        ts ? timeOf(ts) : null,
        note,
      ),
      body,
      actions,
    );
    return { el, body, note, actions };
  }

  messageKind(message) {
    if (message.author?.kind === "assistant") return "assistant";
    return message.author?.id && message.author.id === this.me.id ? "mine" : "theirs";
  }

  // Puts `el` in seq order among the stored messages, above sends and answers in flight.
  place(el, seq) {
    const open = this.open;
    let after = null;
    for (const [s, other] of open.bySeq) {
      if (s < seq && (!after || s > after.seq)) after = { seq: s, el: other };
    }
    let before = null;
    for (const [s, other] of open.bySeq) {
      if (s > seq && (!before || s < before.seq)) before = { seq: s, el: other };
    }
    if (before) before.el.before(el);
    else {
      const firstLoose = this.log.querySelector(".chat-msg:not([data-seq])");
      if (firstLoose) firstLoose.before(el);
      else this.log.append(el);
    }
    open.bySeq.set(seq, el);
  }

  drawMessage(message) {
    const open = this.open;
    const existing = open.bySeq.get(message.seq);
    if (existing && !existing.classList.contains("placeholder")) return;
    const b = this.bubble(this.messageKind(message), message.author?.name ?? "Someone", message.ts);
    b.el.dataset.seq = String(message.seq);
    b.body.textContent = message.body;
    const finished = FINISHED[message.finish];
    if (finished) b.note.textContent = finished;
    this.following(() => {
      if (existing) {
        existing.replaceWith(b.el);
        open.bySeq.set(message.seq, b.el);
      } else this.place(b.el, message.seq);
    });
    this.historyStatus.hidden = true;
  }

  // ---- live events --------------------------------------------------------------------

  onMessage(event) {
    const entry = this.rooms.get(event.room);
    if (!entry) return;
    entry.latest = Math.max(entry.latest, event.seq);
    if (event.client_id && this.pending.has(event.client_id) && event.author?.id === this.me.id) {
      this.pending.get(event.client_id).el?.remove();
      this.pending.delete(event.client_id);
    }
    if (event.gen && this.streams.has(event.gen)) {
      this.streams.get(event.gen).el?.remove();
      this.streams.delete(event.gen);
    }
    if (event.author?.id) this.stopTyping(event.author.id);
    if (this.open?.id === event.room) {
      this.drawMessage(event);
      if (this.open.ready) this.markRead();
    } else {
      // What I wrote elsewhere (another tab, say) is read already.
      const mine = event.author?.id === this.me.id;
      if (mine && entry.read !== null && entry.read >= event.seq - 1) {
        entry.read = event.seq;
        localStorage.setItem(this.readKey(event.room), String(entry.read));
      }
      this.renderBadge(entry);
    }
  }

  onAiStart(event) {
    if (!this.rooms.has(event.room) || this.streams.has(event.gen)) return;
    const stream = { room: event.room, gen: event.gen, replyTo: event.reply_to, text: "" };
    this.streams.set(event.gen, stream);
    if (this.open?.id === event.room) this.drawStream(stream);
  }

  onAiDelta(event) {
    const stream = this.streams.get(event.gen);
    if (!stream) return;
    stream.text = event.full ? event.text : stream.text + event.text;
    if (stream.el) this.following(() => (stream.body.textContent = stream.text));
  }

  onAiEnd(event) {
    const stream = this.streams.get(event.gen);
    if (!stream) return;
    this.streams.delete(event.gen);
    if (!stream.el || this.open?.id !== stream.room) return;
    if (this.open.bySeq.has(event.seq)) {
      stream.el.remove();
      return;
    }
    // The stored message normally came first; until it does, this bubble stands in for it.
    stream.el.classList.remove("streaming");
    stream.el.classList.add("placeholder");
    stream.el.removeAttribute("aria-busy");
    stream.actions.replaceChildren();
    stream.note.textContent = FINISHED[event.finish] || "";
    stream.el.remove();
    stream.el.dataset.seq = String(event.seq);
    this.place(stream.el, event.seq);
  }

  onAiError(event) {
    const stream = this.streams.get(event.gen);
    if (!stream) return;
    this.streams.delete(event.gen);
    if (!stream.el) return;
    stream.el.classList.remove("streaming");
    stream.el.classList.add("failed");
    stream.el.removeAttribute("aria-busy");
    stream.body.textContent = `The assistant could not answer: ${event.message || event.code}`;
    stream.note.textContent = event.code === "blocked" ? "refused" : "failed";
    stream.actions.replaceChildren(
      h("button", { type: "button", onclick: () => stream.el.remove() }, "Dismiss"),
    );
  }

  drawStream(stream) {
    const b = this.bubble("assistant streaming", "Assistant", null);
    b.el.setAttribute("aria-busy", "true");
    b.el.dataset.gen = stream.gen;
    b.body.textContent = stream.text;
    b.note.textContent = "answering…";
    Object.assign(stream, b);
    this.offerStop(stream);
    this.following(() => this.log.append(b.el));
  }

  // A Stop button once the history says whose prompt this answers.
  offerStop(stream) {
    if (!this.open?.ready || stream.actions.querySelector(".chat-stop")) return;
    if (!this.mayStop(stream)) return;
    const stop = h("button", { type: "button", class: "chat-stop" }, "Stop");
    stop.addEventListener("click", () => this.stop(stream, stop));
    stream.actions.append(stop);
  }

  mayStop(stream) {
    if (this.canManage) return true;
    const prompt = this.open?.bySeq.get(stream.replyTo);
    return !prompt || prompt.classList.contains("mine");
  }

  async stop(stream, button) {
    button.disabled = true;
    stream.note.textContent = "stopping…";
    try {
      await this.client.cancel(stream.room, stream.gen);
    } catch (e) {
      if (!this.streams.has(stream.gen)) return; // it ended on its own meanwhile
      button.disabled = false;
      stream.note.textContent = `could not stop: ${errorText(e)}`;
    }
  }

  onPresence(event) {
    const entry = this.rooms.get(event.room);
    if (!entry || !event.user) return;
    if (event.state === "online") entry.members.set(event.user.id, event.user.name);
    else if (event.state === "offline") entry.members.delete(event.user.id);
    if (this.open?.id === event.room) this.renderPresence();
  }

  renderPresence() {
    const entry = this.rooms.get(this.open?.id);
    if (!entry || !this.presence) return;
    const names = [...entry.members.entries()].map(([id, name]) =>
      id === this.me.id ? `${name} (you)` : name,
    );
    this.presence.textContent = names.length ? `Online: ${names.join(", ")}` : "";
  }

  onTyping(event) {
    if (this.open?.id !== event.room || !event.user || event.user.id === this.me.id) return;
    const known = this.typists.get(event.user.id);
    if (known) clearTimeout(known.timer);
    const timer = setTimeout(() => this.stopTyping(event.user.id), TYPING_SHOWN_MS);
    this.typists.set(event.user.id, { name: event.user.name, timer });
    this.renderTyping();
  }

  stopTyping(userId) {
    const known = this.typists.get(userId);
    if (!known) return;
    clearTimeout(known.timer);
    this.typists.delete(userId);
    this.renderTyping();
  }

  clearTypists() {
    for (const { timer } of this.typists.values()) clearTimeout(timer);
    this.typists.clear();
  }

  renderTyping() {
    if (!this.typingLine) return;
    const names = [...this.typists.values()].map((t) => t.name);
    this.typingLine.textContent =
      names.length === 0
        ? ""
        : names.length === 1
          ? `${names[0]} is typing…`
          : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
  }

  onLeft(event) {
    if (!event.reason) return; // the reply to our own leave
    const why =
      event.reason === "deleted"
        ? "This room was deleted."
        : "You are no longer a member of this room's team.";
    this.dropRoom(event.room, why);
    for (const [clientId, send] of this.pending) {
      if (send.room === event.room) this.pending.delete(clientId);
    }
  }

  onState(event) {
    if (event.state === "open" && this.wasOpen) this.refreshRooms();
    if (event.state !== "open") {
      // Deltas are never replayed: a finished answer comes back as its stored message, a
      // running one as a new ai.start with the text so far.
      for (const stream of this.streams.values()) stream.el?.remove();
      this.streams.clear();
      return;
    }
    if (this.wasOpen) {
      // Presence changed while we were away; joining again answers with who is here now.
      for (const entry of this.rooms.values()) entry.stale = true;
      const entry = this.rooms.get(this.open?.id);
      if (entry) entry.joined = this.join(entry);
    }
    this.wasOpen = true;
  }

  // ---- composer -----------------------------------------------------------------------

  buildComposer(entry) {
    const text = h("textarea", {
      name: "body",
      rows: 2,
      maxlength: 4000,
      required: true,
      placeholder: "Write a message",
      enterkeyhint: "send",
    });
    const ask = h("input", { type: "checkbox", name: "ai" });
    this.askToggle = h("label", { class: "chat-ask" }, ask, " Ask the assistant");
    const form = h(
      "form",
      { class: "chat-composer", "aria-label": "Send a message" },
      field("Message", text),
      h(
        "div",
        { class: "chat-composer-row" },
        this.askToggle,
        h("button", { type: "submit" }, "Send"),
      ),
    );
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    text.addEventListener("input", () => {
      const now = Date.now();
      if (text.value && now - this.lastTyping >= TYPING_EVERY_MS) {
        this.lastTyping = now;
        try {
          this.client.typing(entry.room.id);
        } catch {
          // typing is a hint; a closed connection just drops it
        }
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = text.value;
      if (!body.trim()) return;
      text.value = "";
      this.lastTyping = 0;
      const ai = entry.room.assistant === "mention" && ask.checked;
      ask.checked = false;
      this.send(entry.room.id, body, ai, newClientId());
    });
    if (!matchMedia("(max-width: 600px)").matches) queueMicrotask(() => text.focus());
    return form;
  }

  // The message is stored, but the assistant will not answer it (quota, a full queue).
  onRefusedAnswer(frame) {
    if (typeof frame.seq !== "number" || frame.room !== this.open?.id || !this.answerAlert) return;
    this.answerAlert.textContent = `The assistant will not answer: ${frame.message || frame.code}`;
  }

  async send(roomId, body, ai, clientId) {
    const send = { room: roomId, body, ai, el: null, error: null };
    if (this.answerAlert) this.answerAlert.textContent = "";
    this.pending.set(clientId, send);
    if (this.open?.id === roomId) this.drawPending(clientId, send);
    try {
      const seq = await this.client.send(roomId, body, { ai, clientId });
      if (this.pending.get(clientId) !== send) return; // its message event came first
      // Acked; the message event with this seq replaces the pending bubble.
      this.pending.delete(clientId);
      if (!send.el) return;
      if (this.open?.id !== roomId || this.open.bySeq.has(seq)) {
        send.el.remove();
        return;
      }
      send.el.classList.remove("pending");
      send.el.classList.add("placeholder");
      send.note.textContent = "";
      send.el.remove();
      send.el.dataset.seq = String(seq);
      this.place(send.el, seq);
    } catch (e) {
      if (this.pending.get(clientId) !== send) return;
      send.error = e;
      if (send.el) this.showRefused(clientId, send);
    }
  }

  drawPending(clientId, send) {
    const b = this.bubble("mine pending", this.me.name || "You", null);
    b.el.dataset.clientId = clientId;
    b.body.textContent = send.body;
    b.note.textContent = "sending…";
    Object.assign(send, b);
    if (send.error) this.showRefused(clientId, send);
    this.following(() => this.log.append(b.el));
    this.historyStatus.hidden = true;
  }

  showRefused(clientId, send) {
    send.el.classList.remove("pending");
    send.el.classList.add("failed");
    send.note.textContent = `not sent: ${errorText(send.error)}`;
    send.note.setAttribute("role", "alert");
    const retry = h("button", { type: "button" }, "Retry");
    const discard = h("button", { type: "button" }, "Discard");
    retry.addEventListener("click", () => {
      this.pending.delete(clientId);
      send.el.remove();
      this.send(send.room, send.body, send.ai, clientId);
    });
    discard.addEventListener("click", () => {
      this.pending.delete(clientId);
      send.el.remove();
    });
    send.actions.replaceChildren(retry, discard);
  }

  // ---- room settings (team owners and admins) -----------------------------------------

  buildSettings(entry) {
    const room = entry.room;
    const name = h("input", { name: "name", required: true, maxlength: 100, value: room.name });
    const mode = modeSelect(room.assistant);
    const prompt = h("textarea", { name: "system_prompt", rows: 3, maxlength: 8000 });
    prompt.value = room.system_prompt ?? "";
    const error = h("p", { class: "chat-error", role: "alert" });
    const status = h("p", { class: "chat-muted", role: "status" });
    const remove = h("button", { type: "button", class: "chat-danger" }, "Delete room");
    const confirm = h("div", { class: "chat-confirm", hidden: true });
    const form = h(
      "form",
      { class: "chat-form", "aria-label": "Room settings" },
      field("Room name", name),
      field("Assistant answers", mode),
      field("Assistant instructions (empty: the default)", prompt),
      h("div", { class: "chat-composer-row" }, h("button", { type: "submit" }, "Save"), remove),
      confirm,
      error,
      status,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = status.textContent = "";
      const body = {
        name: name.value.trim(),
        assistant: mode.value,
        system_prompt: prompt.value.trim() ? prompt.value : null,
      };
      try {
        entry.room = await this.ctx.api("PATCH", `/rooms/${room.id}`, body);
        entry.label.textContent = entry.room.name;
        this.renderBadge(entry);
        if (this.open?.id === room.id) this.renderMode(entry);
        status.textContent = "Saved.";
      } catch (e) {
        error.textContent = errorText(e);
      }
    });
    remove.addEventListener("click", () => {
      confirm.hidden = false;
      const yes = h(
        "button",
        { type: "button", class: "chat-danger" },
        `Delete “${entry.room.name}” and its messages`,
      );
      const no = h("button", { type: "button" }, "Keep it");
      yes.addEventListener("click", async () => {
        error.textContent = "";
        try {
          await this.ctx.api("DELETE", `/rooms/${room.id}`);
          this.dropRoom(room.id, "This room was deleted.");
          this.go(null);
        } catch (e) {
          error.textContent = errorText(e);
        }
      });
      no.addEventListener("click", () => {
        confirm.hidden = true;
        remove.focus();
      });
      confirm.replaceChildren(h("p", {}, "Delete this room for everyone?"), yes, no);
      no.focus();
    });
    return h("details", { class: "chat-settings" }, h("summary", {}, "Room settings"), form);
  }

  // ---- teardown -----------------------------------------------------------------------

  unmount() {
    if (this.gone) return;
    this.gone = true;
    document.removeEventListener("visibilitychange", this.onVisible);
    for (const [kind, handler] of Object.entries(this.handlers)) this.client?.off(kind, handler);
    this.clearTypists();
    for (const id of this.rooms.keys()) this.client?.leave(id).catch(() => {});
    this.root.remove();
  }
}
