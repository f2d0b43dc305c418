// roomcast.js: the Roomcast websocket client for browsers and Node (>= 22, or 20 with a
// WebSocket passed in). One dependency-free ES module; no build step.
//
// It follows section 5 of docs/protocol.md ("Losing nothing"): the highest `seq` per room
// from `message` events, `join` with `since` after every reconnect, duplicates dropped by
// `seq`, an outbox of sends keyed by `client_id` resent until acked, re-`auth` on the open
// socket before the token expires, and jittered exponential backoff chosen by the close code.

/** Close codes after which reconnecting would only repeat the client's mistake. */
export const FATAL_CODES = Object.freeze([4400, 1003, 1007, 1009]);
/** Close codes (besides network loss) that are reconnected with the usual backoff. */
export const RETRY_CODES = Object.freeze([1006, 1011, 4503, 4509]);

const STABLE_AFTER_MS = 10_000; // a connection up this long resets the backoff
const READY_TIMEOUT_MS = 15_000; // the server closes at 10 s without `auth`; it answers fast
const FRAMES_PER_SECOND = 40; // the server closes with 4429 above 50 a second
const REFRESH_MARGIN_S = 60; // RefreshingToken refreshes this close to `exp`
const SEND_RETRIES = 3; // a send refused with "retry shortly" is retried this often
const SEND_RETRY_MS = 250; // first wait before such a retry, doubled each time
const LEAVE_BACKOFF = { initial: 0.1, max: 2 }; // a `leave` a busy room refused, asked again

// ------------------------------------------------------------------------------ errors

/** Base class of every error this module throws or rejects with. */
export class RoomcastError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The server answered a request with an `error` frame (or a REST error body). */
export class RequestError extends RoomcastError {
  constructor(code, message, status = undefined) {
    super(`${code}: ${message}`);
    this.code = code;
    this.message = message;
    this.status = status;
  }
}

/** A `send` was refused and nothing was stored; resending with `clientId` is safe. */
export class SendError extends RequestError {
  constructor(code, message, { room, clientId }) {
    super(code, message);
    this.room = room;
    this.clientId = clientId;
  }
}

/** The client stopped (close(), or a close code it must not reconnect after). */
export class ConnectionClosedError extends RoomcastError {
  constructor(message, code = undefined) {
    super(message);
    this.code = code;
  }
}

/** The server refused the token (4401, HTTP 401) and no fresh one could be had. */
export class AuthenticationError extends ConnectionClosedError {
  constructor(message, code = 4401) {
    super(message, code);
  }
}

/** The server closed with 4400, 1003, 1007 or 1009: a client bug; not reconnected. */
export class ProtocolError extends ConnectionClosedError {}

// ------------------------------------------------------------------------------ tokens

/** The JWT payload, NOT verified (the server does that); {} when it is not a JWT. */
export function tokenClaims(token) {
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3) return {};
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : {};
  } catch {
    return {};
  }
}

/** The token's `exp` in seconds since the epoch, or undefined. */
export function tokenExpiry(token) {
  const exp = tokenClaims(token).exp;
  return typeof exp === "number" ? exp : undefined;
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (response.ok) return data;
  const error = (data && data.error) || {};
  const code = error.code || "internal";
  const message = error.message || `HTTP ${response.status}`;
  if (response.status === 401) {
    const refused = new AuthenticationError(`${code}: ${message}`);
    refused.status = 401;
    refused.reason = code; // "unauthorized", or "totp_required" at login
    throw refused;
  }
  throw new RequestError(code, message, response.status);
}

function apiUrl(baseUrl, path) {
  return `${(baseUrl || "").replace(/\/+$/, "")}/api/v1${path}`;
}

/**
 * A token provider over a sign-in's token pair: `token()` gives the access token,
 * refreshing it first through `POST /api/v1/auth/refresh` when it expires within 60 s.
 * Refreshes are serialized: a refresh token is never presented twice (that would revoke
 * the whole sign-in).
 */
export class RefreshingToken {
  /**
   * @param {string} baseUrl "http://host:port", or "" for the page's own origin.
   * @param {{access_token: string, refresh_token: string}} tokens the newest pair.
   * @param {{onChange?: (tokens: object) => void}} options `onChange` gets every new pair.
   */
  constructor(baseUrl, tokens, { onChange } = {}) {
    this.baseUrl = baseUrl || "";
    this.tokens = { ...tokens };
    this.onChange = onChange;
    this._refreshing = null;
    this.token = this.token.bind(this);
  }

  /**
   * The access token, refreshed when it expires within 60 s, or when `forceRefresh`
   * (the client passes it after the server closed with 4401).
   * Rejects AuthenticationError when the refresh is refused (401): sign in again.
   */
  async token({ forceRefresh = false } = {}) {
    const before = this.tokens.access_token;
    if (this._refreshing) await this._refreshing.catch(() => {});
    // Another caller's refresh, finished while this one waited, is fresh enough.
    if (forceRefresh && this.tokens.access_token !== before) return this.tokens.access_token;
    const exp = tokenExpiry(this.tokens.access_token);
    const fresh = exp === undefined || exp - Date.now() / 1000 > REFRESH_MARGIN_S;
    if (fresh && !forceRefresh) return this.tokens.access_token;
    return (await this.refresh()).access_token;
  }

  /** Spend the refresh token for a new pair now (or join the refresh under way). */
  refresh() {
    if (!this._refreshing) {
      this._refreshing = this._spend().finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  async _spend() {
    const data = await postJson(apiUrl(this.baseUrl, "/auth/refresh"), {
      refresh_token: this.tokens.refresh_token,
    });
    this.tokens = { ...data };
    if (this.onChange) this.onChange({ ...this.tokens });
    return this.tokens;
  }
}

/** Sign in with email and password; resolves with a RefreshingToken. */
export async function passwordLogin(baseUrl, email, password, { totp, onChange } = {}) {
  const body = { email, password };
  if (totp !== undefined) body.totp = totp;
  const tokens = await postJson(apiUrl(baseUrl, "/auth/login"), body);
  return new RefreshingToken(baseUrl, tokens, { onChange });
}

// ------------------------------------------------------------------------------ backoff

/** Full-jitter exponential backoff: a random wait in [0, min(max, base * 2^n)] seconds. */
export class Backoff {
  constructor({ initial = 0.5, max = 30, slowInitial = 5, random = Math.random } = {}) {
    this.initial = initial;
    this.max = max;
    this.slowInitial = slowInitial;
    this.random = random;
    this.attempts = 0;
    this.slow = false;
  }

  /** The next wait in seconds; `slow` (after 4429) starts from `slowInitial` until reset. */
  next({ slow = false } = {}) {
    this.slow = this.slow || slow;
    const base = this.slow ? this.slowInitial : this.initial;
    const bound = Math.min(this.max, base * 2 ** this.attempts);
    this.attempts += 1;
    return this.random() * bound;
  }

  reset() {
    this.attempts = 0;
    this.slow = false;
  }
}

// ------------------------------------------------------------------------------ client

function randomId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  // crypto.randomUUID exists only in secure contexts (https, localhost).
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function websocketUrl(baseUrl) {
  let base = baseUrl;
  if (!base) {
    if (!globalThis.location) throw new TypeError("baseUrl is required outside a browser");
    base = globalThis.location.origin;
  }
  const url = new URL("/ws", base.replace(/\/+$/, "") + "/");
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A Roomcast connection that survives disconnects without losing or repeating messages.
 * See README.md for the API and docs/protocol.md for the frames.
 */
export class Client {
  /**
   * @param {string} baseUrl "http://host:port", or "" for the page's own origin.
   * @param {string | ((options?: {forceRefresh?: boolean}) => Promise<string>)} token an
   *   access token, or a provider called for every (re)auth (`forceRefresh` after 4401).
   * @param {object} options `WebSocket`, `backoff: {initial, max, slowInitial}` (seconds),
   *   `reauthBefore` (seconds before `exp` to re-`auth`).
   */
  constructor(baseUrl, token, options = {}) {
    this._url = websocketUrl(baseUrl);
    this._token = typeof token === "string" ? token : undefined;
    this._provider = typeof token === "function" ? token : undefined;
    if (typeof token === "object" && token && typeof token.token === "function") {
      this._provider = token.token.bind(token); // a RefreshingToken itself
    }
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    if (!this._WebSocket) throw new TypeError("no WebSocket: pass options.WebSocket");
    this._backoff = new Backoff(options.backoff);
    this._reauthBefore = options.reauthBefore ?? 60;

    this._handlers = new Map(); // kind -> Set of handlers
    this._rooms = new Map(); // room -> {lastSeq, joinedOn, waiters, leaving}
    this._outbox = new Map(); // clientId -> {room, body, ai, clientId, sentOn, resolve, reject}
    this._requests = new Map(); // id -> {resolve, reject}
    this._nextId = 1;

    this._link = null; // the current connection: {ws, conn, end, timer, done}
    this._conn = 0; // number of the current connection
    this._readyConn = -1; // the connection that has answered `ready`
    this._closing = false;
    this._error = null;
    this._started = null;
    this._wake = null; // cuts the backoff sleep short (close())
    this._queue = []; // frames waiting for the rate limiter
    this._allowance = FRAMES_PER_SECOND;
    this._allowanceAt = Date.now();
    this._flushTimer = null;

    this.state = "closed";
    this.user = undefined;
    this.session = undefined;
    this.heartbeat = undefined;
    this.reauths = 0; // re-authentications on an open connection
    this.connections = 0; // connections that reached `ready`
  }

  // ---------------------------------------------------------------------- events

  /** Call `handler(event)` for events of `kind` ("message", "ai.delta", "state", ...). */
  on(kind, handler) {
    if (!this._handlers.has(kind)) this._handlers.set(kind, new Set());
    this._handlers.get(kind).add(handler);
    return this;
  }

  off(kind, handler) {
    this._handlers.get(kind)?.delete(handler);
    return this;
  }

  _emit(kind, event) {
    for (const handler of [...(this._handlers.get(kind) || [])]) {
      try {
        handler(event);
      } catch (error) {
        // A handler's bug must not break the connection.
        if (typeof globalThis.reportError === "function") globalThis.reportError(error);
        else console.error(error);
      }
    }
  }

  _setState(state, details = {}) {
    this.state = state;
    this._emit("state", { state, ...details });
  }

  // ---------------------------------------------------------------------- lifecycle

  /** Connect; resolves on the first `ready`. Later disconnects are reconnected alone. */
  connect() {
    if (this._started) return this._started.promise;
    this._started = deferred();
    this._run().catch((error) => this._finish(error));
    return this._started.promise;
  }

  /** Close for good: no reconnect afterwards; pending sends and joins reject. */
  async close() {
    this._closing = true;
    if (this._link) this._drop(this._link, 1000, "closed by the client");
    if (this._wake) this._wake();
    this._finish(null);
  }

  /** The highest `seq` seen in `room` (from `message` events or its `joined`), or undefined. */
  lastSeq(room) {
    return this._joined(room)?.lastSeq;
  }

  // ---------------------------------------------------------------------- requests

  /**
   * Join `room` (again after every reconnect, with `since`); resolves `{seq, members}`.
   * `since`: the highest `seq` you already have, to have what came after replayed.
   */
  join(room, { since } = {}) {
    const closed = this._closedError();
    if (closed) return Promise.reject(closed);
    let entry = this._rooms.get(room);
    if (!entry) {
      entry = { lastSeq: since, joinedOn: -1, waiters: [], leaving: null };
      this._rooms.set(room, entry);
    }
    if (entry.leaving) {
      // The join wins: written after the `leave`, the server ends with the room joined.
      const error = new RequestError("joined", "joined again before the server let the room go");
      this._settleLeave(entry, (leaving) => leaving.reject(error));
    }
    const waiter = deferred();
    entry.waiters.push(waiter);
    if (this._isReady()) this._writeJoin(room, entry);
    return waiter.promise;
  }

  /**
   * Leave `room`. For the application it is left at once: its events are dropped, `send`
   * and `typing` refuse it, `lastSeq` forgets it and no reconnect joins it again. Its join
   * waiters reject RequestError and its unsent sends SendError (code "left"); sends already
   * written still get their reply. The client keeps it with the server until the `left`
   * reply: a room too busy to take the `leave` (`rate_limited`, `unavailable`) is asked
   * again after a jittered wait from 100 ms doubling up to 2 s.
   *
   * Resolves once the server has let the room go: its `left` reply, or the end of the
   * connection that was in it. A room this client is not in resolves at once: the goal is
   * reached. Rejects RequestError on any other refusal (the room is forgotten all the
   * same), or with code "joined" when `join(room)` is called before the reply.
   */
  leave(room) {
    const entry = this._rooms.get(room);
    if (!entry) return Promise.resolve();
    if (entry.leaving) return entry.leaving.promise;
    this._abandon(room, entry, "left", "the room was left");
    if (!this._isReady()) {
      // No socket is in the room now, and the next one will not join it.
      this._rooms.delete(room);
      return Promise.resolve();
    }
    entry.leaving = { ...deferred(), backoff: new Backoff(LEAVE_BACKOFF), timer: undefined };
    this._write({ type: "leave", room, id: `l:${room}` });
    return entry.leaving.promise;
  }

  /**
   * Send `body` to `room`; resolves with its `seq` once stored. It carries a `client_id`
   * and is resent with it after every reconnect until acked, so it is stored once.
   * Rejects SendError when the server refuses it (nothing stored).
   */
  send(room, body, { ai = false, clientId = undefined } = {}) {
    const closed = this._closedError();
    if (closed) return Promise.reject(closed);
    const id = clientId || randomId();
    const entry = this._joined(room);
    if (!entry) {
      return Promise.reject(
        new SendError("forbidden", "join the room first", { room, clientId: id }),
      );
    }
    const existing = this._outbox.get(id);
    if (existing) return existing.promise;
    const pending = { room, body, ai, clientId: id, sentOn: -1, retries: 0, ...deferred() };
    this._outbox.set(id, pending);
    if (entry.joinedOn === this._conn && this._isReady()) this._writeSend(pending);
    return pending.promise;
  }

  /** Tell the room you are typing. Fire-and-forget; dropped while disconnected. */
  typing(room) {
    const entry = this._joined(room);
    if (entry && entry.joinedOn === this._conn && this._isReady()) {
      this._write({ type: "typing", room });
    }
  }

  /** Stop the assistant's answer `gen`; rejects RequestError (forbidden, not_found). */
  async cancel(room, gen) {
    await this._request({ type: "cancel", room, gen });
  }

  /** An application-level `ping`; resolves with the round trip in milliseconds. */
  async ping() {
    const started = Date.now();
    await this._request({ type: "ping" });
    return Date.now() - started;
  }

  // ---------------------------------------------------------------------- internals

  _closedError() {
    if (this._error) return this._error;
    if (this._closing) return new ConnectionClosedError("the client is closed", 1000);
    return null;
  }

  _isReady() {
    return this._link !== null && this._readyConn === this._conn;
  }

  // The room's entry while the application is in it: not while its `leave` is pending.
  _joined(room) {
    const entry = this._rooms.get(room);
    return entry && !entry.leaving ? entry : undefined;
  }

  _request(frame) {
    const closed = this._closedError();
    if (closed) return Promise.reject(closed);
    if (!this._isReady()) return Promise.reject(new ConnectionClosedError("not connected"));
    const id = this._nextId++;
    const reply = deferred();
    this._requests.set(id, reply);
    this._write({ ...frame, id });
    return reply.promise;
  }

  _writeJoin(room, entry) {
    entry.joinedOn = this._conn;
    const frame = { type: "join", room, id: `j:${room}` };
    if (entry.lastSeq !== undefined) frame.since = entry.lastSeq;
    this._write(frame);
  }

  _writeSend(pending) {
    pending.sentOn = this._conn;
    this._write({
      type: "send",
      room: pending.room,
      body: pending.body,
      ai: pending.ai,
      client_id: pending.clientId,
      id: `s:${pending.clientId}`,
    });
  }

  // Frames go out through a token bucket, so a reconnect that rejoins many rooms and
  // resends a long outbox stays under the server's frame rate (4429 otherwise).
  _write(frame) {
    this._queue.push({ conn: this._conn, data: JSON.stringify(frame) });
    this._flush();
  }

  _flush() {
    if (this._flushTimer) return;
    const now = Date.now();
    this._allowance = Math.min(
      FRAMES_PER_SECOND,
      this._allowance + ((now - this._allowanceAt) / 1000) * FRAMES_PER_SECOND,
    );
    this._allowanceAt = now;
    while (this._queue.length > 0 && this._allowance >= 1) {
      const { conn, data } = this._queue.shift();
      if (conn !== this._conn || !this._link) continue; // written for a connection now gone
      try {
        this._link.ws.send(data);
        this._lastSent = now;
      } catch {
        continue; // the socket is closing; its close event follows
      }
      this._allowance -= 1;
    }
    if (this._queue.length > 0) {
      this._flushTimer = setTimeout(() => {
        this._flushTimer = null;
        this._flush();
      }, 1000 / FRAMES_PER_SECOND);
    }
  }

  async _freshToken({ forceRefresh }) {
    if (!this._provider) {
      if (forceRefresh) throw new AuthenticationError("the server refused the access token");
      return this._token;
    }
    const old = this._token;
    const fresh = await this._provider({ forceRefresh });
    if (forceRefresh && fresh === old) {
      throw new AuthenticationError("the token provider gave no fresh token");
    }
    this._token = fresh;
    return fresh;
  }

  async _run() {
    let code;
    let reason;
    let refused = 0; // 4401s in a row, each after a fresh token
    while (!this._closing) {
      if (this.connections === 0 && code === undefined) this._setState("connecting");
      let token;
      let failure;
      try {
        token = await this._freshToken({ forceRefresh: code === 4401 });
      } catch (error) {
        if (error instanceof AuthenticationError) throw error;
        failure = error; // the auth server is unreachable or busy: back off, try again
      }
      if (this._closing) return;
      let up = 0;
      if (token !== undefined) {
        const started = Date.now();
        ({ code, reason } = await this._connectOnce(token));
        up = Date.now() - started;
      } else {
        ({ code, reason } = { code: 1006, reason: `cannot get a token: ${failure}` });
      }
      if (this._closing) return;
      if (FATAL_CODES.includes(code)) {
        throw new ProtocolError(`the server closed with ${code}: ${reason || ""}`, code);
      }
      refused = code === 4401 ? refused + 1 : 0;
      if (refused > 3) throw new AuthenticationError("refused again with fresh tokens");
      if (up >= STABLE_AFTER_MS) this._backoff.reset();
      const delay = code === 4408 || code === 4401 ? 0 : this._backoff.next({ slow: code === 4429 });
      this._setState("reconnecting", { attempt: this._backoff.attempts, delay, code, reason });
      await this._wait(delay);
    }
  }

  // The wait before a reconnect. close() ends it, and so does a browser that comes back
  // online: the network is back, and the rest of the backoff would only be lost time.
  _wait(seconds) {
    const events = typeof globalThis.addEventListener === "function" ? globalThis : null;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        events?.removeEventListener("online", done);
        this._wake = null;
        resolve();
      };
      const timer = setTimeout(done, seconds * 1000);
      events?.addEventListener("online", done);
      this._wake = done;
    });
  }

  // One connection from dialling to its close; resolves {code, reason}.
  _connectOnce(token) {
    return new Promise((resolve) => {
      let ws;
      try {
        ws = new this._WebSocket(this._url);
      } catch (error) {
        resolve({ code: 1006, reason: String(error) });
        return;
      }
      this._conn += 1;
      const conn = this._conn;
      const link = { ws, conn, end: resolve, timer: undefined, done: false };
      this._link = link;
      this._lastReceived = this._lastSent = Date.now();
      ws.onopen = () => {
        this._queue = this._queue.filter((item) => item.conn === conn);
        this._authId = this._nextId++;
        this._write({ type: "auth", token, id: this._authId });
      };
      ws.onmessage = (message) => {
        this._lastReceived = Date.now();
        if (typeof message.data !== "string") return;
        let frame;
        try {
          frame = JSON.parse(message.data);
        } catch {
          return;
        }
        if (frame && typeof frame === "object" && !Array.isArray(frame)) this._onFrame(frame);
      };
      ws.onerror = () => {}; // the close event follows and says how it ended
      ws.onclose = (event) => this._drop(link, event.code, event.reason);
      link.timer = setTimeout(() => {
        if (this._readyConn !== conn) this._drop(link, 1006, "no ready in time");
      }, READY_TIMEOUT_MS);
    });
  }

  // The end of a connection, whether its socket closed or we gave up on it.
  _drop(link, code, reason) {
    if (link.done) return;
    link.done = true;
    const { ws } = link;
    ws.onopen = ws.onmessage = ws.onclose = null;
    clearTimeout(link.timer);
    clearTimeout(this._reauthTimer);
    clearInterval(this._heartbeatTimer);
    if (ws.readyState === 0 || ws.readyState === 1) {
      try {
        ws.close(1000);
      } catch {
        // closing already
      }
    }
    if (this._link === link) {
      this._link = null;
      this._readyConn = -1;
    }
    const lost = new ConnectionClosedError("connection lost", code);
    for (const reply of this._requests.values()) reply.reject(lost);
    this._requests.clear();
    this._leftWithConnection();
    const normal = code === undefined || code === 1000 || code === 1001 || code === 1005;
    link.end({ code: normal && !this._closing ? 1006 : code, reason });
  }

  _onReady(frame) {
    const conn = this._conn;
    this._readyConn = conn;
    this.connections += 1;
    this.user = frame.user;
    this.session = frame.session;
    this.heartbeat = typeof frame.heartbeat === "number" ? frame.heartbeat : 25;
    this._dropOrphans();
    for (const [room, entry] of this._rooms) this._writeJoin(room, entry);
    this._startHeartbeat(this._link);
    this._scheduleReauth(this._link);
    this._setState("open");
    if (this._started) this._started.resolve();
  }

  // Any frame counts as a sign of life for the server, so a `ping` when the client has
  // been quiet keeps it from dropping us whether or not the WebSocket answers its pings.
  // A `ping` left unanswered for a heartbeat means the server is gone (a dead peer
  // behind a NAT). Judged by the ping, not by silence alone: a background tab's timers
  // may run once a minute, and a quiet room is no sign of a dead server.
  _startHeartbeat(link) {
    clearInterval(this._heartbeatTimer);
    const interval = (this.heartbeat * 1000) / 2;
    let pingedAt;
    this._heartbeatTimer = setInterval(() => {
      const now = Date.now();
      const unanswered = pingedAt !== undefined && this._lastReceived < pingedAt;
      if (unanswered && now - pingedAt >= this.heartbeat * 1000) {
        this._drop(link, 1006, "the server stopped answering");
      } else if (!unanswered && now - this._lastSent >= interval) {
        pingedAt = now;
        this._write({ type: "ping" });
      }
    }, interval);
  }

  _reauthDelay(token) {
    const claims = tokenClaims(token);
    if (typeof claims.exp !== "number") return undefined;
    let margin = this._reauthBefore;
    if (typeof claims.iat === "number") margin = Math.min(margin, (claims.exp - claims.iat) / 5);
    return Math.max(0, (claims.exp - margin) * 1000 - Date.now());
  }

  _scheduleReauth(link) {
    clearTimeout(this._reauthTimer);
    if (!this._provider) return;
    const delay = this._reauthDelay(this._token);
    if (delay === undefined) return;
    this._reauthTimer = setTimeout(() => this._reauth(link), Math.min(delay, 2 ** 31 - 1));
  }

  // Re-`auth` on the open socket with a fresh token: the connection keeps its rooms.
  async _reauth(link) {
    for (let attempt = 0; attempt < 5 && this._link === link && !this._closing; attempt++) {
      try {
        let fresh = await this._provider({ forceRefresh: false });
        if (fresh === this._token) fresh = await this._provider({ forceRefresh: true });
        if (this._link !== link) return;
        this._token = fresh;
        const ready = await this._request({ type: "auth", token: fresh });
        this.session = ready.session ?? this.session;
        this.reauths += 1;
        this._scheduleReauth(link);
        return;
      } catch (error) {
        // A refused refresh: the server will close with 4401, and the reconnect decides.
        if (error instanceof AuthenticationError || error instanceof ConnectionClosedError) {
          return;
        }
        if (error instanceof RequestError && error.code !== "unavailable") return;
        await sleep(1000);
      }
    }
  }

  _finish(error) {
    if (this._error === null && error) this._error = error;
    const reason = this._error || new ConnectionClosedError("the client is closed", 1000);
    for (const pending of this._outbox.values()) pending.reject(reason);
    this._outbox.clear();
    for (const entry of this._rooms.values()) {
      for (const waiter of entry.waiters) waiter.reject(reason);
      entry.waiters = [];
    }
    for (const reply of this._requests.values()) reply.reject(reason);
    this._requests.clear();
    this._leftWithConnection();
    clearTimeout(this._reauthTimer);
    clearInterval(this._heartbeatTimer);
    clearTimeout(this._flushTimer);
    this._flushTimer = null;
    this._queue = [];
    this._closing = true;
    if (this._started) this._started.reject(reason);
    if (this.state !== "closed" || error) {
      this._setState("closed", { code: reason.code, reason: reason.message, error: this._error });
    }
  }

  // "Retry shortly" (the room is busy, or storing failed): the same client_id again, so a
  // message is never stored twice. A reconnect meanwhile resends it after the rejoin.
  _resendLater(pending) {
    pending.retries += 1;
    pending.sentOn = -1;
    setTimeout(() => {
      const entry = this._rooms.get(pending.room);
      const current = entry && entry.joinedOn === this._conn && this._isReady();
      if (this._outbox.get(pending.clientId) === pending && pending.sentOn === -1 && current) {
        this._writeSend(pending);
      }
    }, SEND_RETRY_MS * 2 ** (pending.retries - 1));
  }

  // Drop `room`: the server no longer has it for us. A pending `leave` of it resolves.
  _forget(room, code, message) {
    const entry = this._rooms.get(room);
    if (!entry) return;
    this._abandon(room, entry, code, message);
    this._rooms.delete(room);
    this._settleLeave(entry, (leaving) => leaving.resolve());
  }

  // Its join waiters reject RequestError, its unsent sends SendError. A send already
  // written on this connection waits for its reply: it may have been stored.
  _abandon(room, entry, code, message) {
    for (const waiter of entry.waiters) waiter.reject(new RequestError(code, message));
    entry.waiters = [];
    for (const pending of this._outbox.values()) {
      if (pending.room === room && !(pending.sentOn === this._conn && this._isReady())) {
        this._outbox.delete(pending.clientId);
        pending.reject(new SendError(code, message, pending));
      }
    }
  }

  // End the pending `leave` of `entry` through `settle(leaving)`; the room stays in the
  // map (a join took it back) unless the caller deletes it.
  _settleLeave(entry, settle) {
    const { leaving } = entry;
    if (!leaving) return;
    entry.leaving = null;
    clearTimeout(leaving.timer);
    settle(leaving);
  }

  // The connection is gone, and the rooms it was leaving with it: a new one never joins them.
  _leftWithConnection() {
    for (const [room, entry] of this._rooms) {
      if (!entry.leaving) continue;
      this._rooms.delete(room);
      this._settleLeave(entry, (leaving) => leaving.resolve());
    }
  }

  // The reply to our `leave`: the room is let go. False when no leave of it is pending
  // (a join took it back meanwhile, and the server has it joined again).
  _onLeft(room) {
    const entry = this._rooms.get(room);
    if (!entry?.leaving) return false;
    this._rooms.delete(room);
    this._settleLeave(entry, (leaving) => leaving.resolve());
    return true;
  }

  // A `leave` refused. Too busy (or unavailable) leaves the member in the room: ask again
  // after a jittered wait, on this connection only (another one never joined the room).
  _onLeaveRefused(room, code, message) {
    const entry = this._rooms.get(room);
    const leaving = entry?.leaving;
    if (!leaving) return;
    if (code === "rate_limited" || code === "unavailable") {
      const link = this._link;
      leaving.timer = setTimeout(() => {
        if (this._link === link && this._isReady() && entry.leaving === leaving) {
          this._write({ type: "leave", room, id: `l:${room}` });
        }
      }, leaving.backoff.next() * 1000);
      return;
    }
    this._rooms.delete(room);
    this._settleLeave(entry, (pending) => pending.reject(new RequestError(code, message)));
  }

  // Sends to rooms forgotten while their reply was on its way, and lost with the
  // connection: nothing will answer them now.
  _dropOrphans() {
    for (const pending of this._outbox.values()) {
      if (!this._rooms.has(pending.room)) {
        this._outbox.delete(pending.clientId);
        const message = "the room was left before the reply; the message may be stored";
        pending.reject(new SendError("left", message, pending));
      }
    }
  }

  _onFrame(frame) {
    const { type, re } = frame;
    switch (type) {
      case "ready":
        if (re === this._authId && this._readyConn !== this._conn) this._onReady(frame);
        else this._resolve(re, frame);
        return;
      case "message": {
        const entry = this._joined(frame.room);
        if (!entry) return;
        if (entry.lastSeq !== undefined && frame.seq <= entry.lastSeq) return; // a replay
        entry.lastSeq = frame.seq;
        this._emit("message", frame);
        return;
      }
      case "ack":
        if (typeof re === "string" && re.startsWith("s:")) {
          const pending = this._outbox.get(re.slice(2));
          if (pending) {
            this._outbox.delete(pending.clientId);
            pending.resolve(frame.seq);
          }
        } else {
          this._resolve(re, frame);
        }
        return;
      case "joined":
        this._onJoined(frame);
        return;
      case "error":
        this._onError(frame);
        return;
      case "left":
        if (frame.reason !== undefined || re === undefined) {
          const entry = this._rooms.get(frame.room);
          if (!entry) return;
          const leaving = entry.leaving !== null; // then left already, for the application
          const reason = frame.reason || "removed";
          this._forget(frame.room, reason, `the server ended the stay in the room (${reason})`);
          if (leaving) return;
        } else if (typeof re === "string" && re.startsWith("l:")) {
          if (!this._onLeft(re.slice(2))) return;
        } else {
          return;
        }
        this._emit("left", frame);
        return;
      case "pong":
        this._resolve(re, frame);
        return;
      default:
        if (this._joined(frame.room)) this._emit(type, frame);
    }
  }

  _onJoined(frame) {
    const entry = this._joined(frame.room);
    if (!entry) return;
    if (entry.lastSeq === undefined) entry.lastSeq = frame.seq;
    const joined = { room: frame.room, seq: frame.seq, members: frame.members || [] };
    for (const waiter of entry.waiters) waiter.resolve(joined);
    entry.waiters = [];
    // Sends wait for their room's `joined` on this connection, else they get `forbidden`.
    for (const pending of this._outbox.values()) {
      if (pending.room === frame.room && pending.sentOn !== this._conn) this._writeSend(pending);
    }
  }

  _resolve(re, frame) {
    const reply = this._requests.get(re);
    if (reply) {
      this._requests.delete(re);
      reply.resolve(frame);
    }
  }

  _onError(frame) {
    const { re } = frame;
    const code = String(frame.code || "internal");
    const message = String(frame.message || "");
    if (typeof frame.seq === "number") {
      // Only the assistant's answer is refused: the message `seq` is stored, its ack comes too.
      if (this._joined(frame.room)) this._emit("error", frame);
    } else if (typeof re === "string" && re.startsWith("s:")) {
      const pending = this._outbox.get(re.slice(2));
      if (!pending) return;
      if ((code === "unavailable" || code === "rate_limited") && pending.retries < SEND_RETRIES) {
        this._resendLater(pending);
        return;
      }
      this._outbox.delete(pending.clientId);
      pending.reject(new SendError(code, message, pending));
    } else if (typeof re === "string" && re.startsWith("j:")) {
      const room = re.slice(2);
      const entry = this._rooms.get(room);
      if (!entry) return;
      if (code === "unavailable" || code === "rate_limited") {
        const link = this._link;
        setTimeout(() => {
          if (this._link === link && this._isReady() && this._joined(room) === entry) {
            this._writeJoin(room, entry);
          }
        }, 1000);
        return;
      }
      this._forget(room, code, message);
    } else if (typeof re === "string" && re.startsWith("l:")) {
      this._onLeaveRefused(re.slice(2), code, message);
    } else if (this._requests.has(re)) {
      const reply = this._requests.get(re);
      this._requests.delete(re);
      reply.reject(new RequestError(code, message));
    } else {
      this._emit("error", frame);
    }
  }
}
