// A WebSocket stand-in for the rules that need a server to misbehave on cue (close codes,
// replays of messages the client already has). The server side is scripted by the test.

import { Client } from "../roomcast.js";

/** A reconnect backoff short enough for tests. */
export const FAKE_BACKOFF = { initial: 0.01, max: 0.05 };

export class FakeSocket {
  static sockets = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = undefined;
    FakeSocket.sockets.push(this);
    setTimeout(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen?.({});
    });
  }

  static reset() {
    FakeSocket.sockets = [];
  }

  static get latest() {
    return FakeSocket.sockets.at(-1);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(data));
  }

  close(code = 1005) {
    if (this.readyState >= 2) return;
    this.closedWith = code;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason: "" }));
  }

  // ---- the scripted server side

  /** The frames the client sent, of `type`. */
  frames(type) {
    return this.sent.filter((frame) => frame.type === type);
  }

  deliver(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** Answer the `auth` frame with `ready`. */
  ready({ user = { id: "u1", name: "Ada" }, heartbeat = 25 } = {}) {
    const auth = this.frames("auth").at(-1);
    this.deliver({ type: "ready", user, session: "s1", heartbeat, re: auth.id });
  }

  /** Answer the latest `join` of `room` with `joined` at `seq`. */
  joined(room, seq, members = []) {
    const join = this.frames("join").findLast((frame) => frame.room === room);
    this.deliver({ type: "joined", room, seq, members, re: join.id });
  }

  /** The server closes the connection with `code`. */
  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/** Resolves once `predicate()` holds; rejects after `ms`. */
export async function until(predicate, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export const message = (room, seq, body = `m${seq}`, clientId = null) => ({
  type: "message",
  room,
  seq,
  id: `id-${seq}`,
  client_id: clientId,
  author: { id: "u2", name: "Bob", kind: "user" },
  body,
  ts: "2026-11-21T10:00:00Z",
});

/** An unsigned JWT-shaped token with these claims (the client reads, never verifies). */
export const fakeJwt = (claims) =>
  `x.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.y`;

/** A client over a FakeSocket, connected: `{client, states, socket}`. */
export async function connected(token = "t1", options = {}) {
  const client = new Client("http://chat.test", token, {
    WebSocket: FakeSocket,
    backoff: FAKE_BACKOFF,
    ...options,
  });
  const states = [];
  client.on("state", (event) => states.push(event));
  const connecting = client.connect();
  await until(() => FakeSocket.latest?.frames("auth").length === 1, "the auth frame");
  FakeSocket.latest.ready();
  await connecting;
  return { client, states, socket: FakeSocket.latest };
}

/** The next connection after `previousCount` sockets, answered `ready`. */
export async function reconnected(previousCount) {
  await until(() => FakeSocket.sockets.length > previousCount, "a new connection");
  const socket = FakeSocket.latest;
  await until(() => socket.frames("auth").length === 1, "the auth frame");
  socket.ready();
  return socket;
}
