// The rules of "Losing nothing" (docs/protocol.md, section 5) against a scripted server:
// backoff, duplicates dropped by seq, rejoin with since, the outbox, and close codes.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import {
  AuthenticationError,
  Backoff,
  Client,
  ProtocolError,
  SendError,
  tokenExpiry,
} from "../roomcast.js";
import {
  connected,
  FAKE_BACKOFF as FAST,
  FakeSocket,
  fakeJwt,
  message,
  reconnected,
  until,
} from "./fake-socket.mjs";

beforeEach(() => FakeSocket.reset());

test("backoff doubles from initial up to max, jittered below the bound, slower after 4429", () => {
  const top = new Backoff({ initial: 0.5, max: 30, slowInitial: 5, random: () => 1 });
  assert.deepEqual(
    Array.from({ length: 8 }, () => top.next()),
    [0.5, 1, 2, 4, 8, 16, 30, 30],
  );
  top.reset();
  assert.deepEqual([top.next({ slow: true }), top.next(), top.next()], [5, 10, 20]);
  top.reset();
  assert.equal(top.next(), 0.5);
  const jittered = new Backoff({ initial: 1, max: 30, random: () => 0.25 });
  assert.deepEqual([jittered.next(), jittered.next()], [0.25, 0.5]);
});

test("the websocket URL follows the base URL's scheme and the token travels in the auth frame", async () => {
  const { client, socket } = await connected("the-token");
  assert.equal(socket.url, "ws://chat.test/ws");
  assert.deepEqual(socket.sent[0], { type: "auth", token: "the-token", id: socket.sent[0].id });
  assert.deepEqual(client.user, { id: "u1", name: "Ada" });
  await client.close();
  const secure = new Client("https://chat.test:8443/", "t", { WebSocket: FakeSocket });
  const connecting = secure.connect().catch((error) => error);
  await until(() => FakeSocket.sockets.length === 2, "the second client");
  assert.equal(FakeSocket.latest.url, "wss://chat.test:8443/ws");
  await secure.close();
  assert.equal((await connecting).code, 1000);
});

test("after 1011 the client rejoins with since, drops replayed duplicates and resends unacked sends", async () => {
  const { client, states, socket } = await connected();
  const joined = client.join("R");
  await until(() => socket.frames("join").length === 1, "join");
  assert.equal(socket.frames("join")[0].since, undefined);
  socket.joined("R", 2);
  assert.deepEqual(await joined, { room: "R", seq: 2, members: [] });
  const messages = [];
  client.on("message", (event) => messages.push(event.seq));
  socket.deliver(message("R", 3));
  socket.deliver(message("R", 4));
  const sending = client.send("R", "hello", { clientId: "c-1" });
  assert.deepEqual(socket.frames("send")[0], {
    type: "send",
    room: "R",
    body: "hello",
    ai: false,
    client_id: "c-1",
    id: "s:c-1",
  });

  socket.serverClose(1011, "internal");
  const fresh = await reconnected(1);
  assert.deepEqual(
    states.map((s) => [s.state, s.code]),
    [
      ["connecting", undefined],
      ["open", undefined],
      ["reconnecting", 1011],
      ["open", undefined],
    ],
  );
  await until(() => fresh.frames("join").length === 1, "the rejoin");
  assert.equal(fresh.frames("join")[0].since, 4);
  assert.equal(fresh.frames("send").length, 0, "a send waits for its room's joined");
  fresh.joined("R", 6);
  assert.deepEqual(fresh.frames("send")[0].client_id, "c-1");
  fresh.deliver(message("R", 4)); // a replay of one the client has
  fresh.deliver(message("R", 5));
  fresh.deliver(message("R", 6, "hello", "c-1"));
  fresh.deliver(message("R", 5)); // and a duplicate out of order
  fresh.deliver({ type: "ack", room: "R", seq: 6, client_id: "c-1", re: "s:c-1" });
  assert.equal(await sending, 6);
  assert.deepEqual(messages, [3, 4, 5, 6]);
  assert.equal(client.lastSeq("R"), 6);
  await client.close();
});

test("a send made while disconnected goes out after the reconnect and its room's joined", async () => {
  const { client, socket } = await connected();
  const joined = client.join("R");
  socket.joined("R", 0);
  await joined;
  socket.serverClose(1006);
  const sending = client.send("R", "offline");
  const fresh = await reconnected(1);
  await until(() => fresh.frames("join").length === 1, "the rejoin");
  fresh.joined("R", 0);
  const [frame] = fresh.frames("send");
  fresh.deliver({ type: "ack", room: "R", seq: 1, client_id: frame.client_id, re: frame.id });
  assert.equal(await sending, 1);
  await client.close();
});

test("4429 backs off from the slow start, 4408 redials at once, close() cuts a wait short", async () => {
  const backoff = { initial: 0.01, max: 60, slowInitial: 20, random: () => 1 };
  const { client, states, socket } = await connected("t", { backoff });
  socket.serverClose(4408);
  const second = await reconnected(1);
  second.serverClose(1011);
  const third = await reconnected(2);
  third.serverClose(4429);
  await until(() => client.state === "reconnecting" && states.at(-1).code === 4429, "4429");
  assert.deepEqual(
    states.filter((s) => s.state === "reconnecting").map((s) => [s.code, s.delay]),
    [
      [4408, 0],
      [1011, 0.01],
      [4429, 40], // the second attempt since the last stable connection, from 20 s
    ],
  );
  await client.close();
  assert.equal(client.state, "closed");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(FakeSocket.sockets.length, 3);
});

test("a browser that comes back online redials without sitting out the backoff", async () => {
  const window = new EventTarget(); // what a browser's globalThis is
  globalThis.addEventListener = window.addEventListener.bind(window);
  globalThis.removeEventListener = window.removeEventListener.bind(window);
  try {
    const backoff = { initial: 60, max: 120, random: () => 1 };
    const { client, states, socket } = await connected("t", { backoff });
    socket.serverClose(1006);
    await until(() => client.state === "reconnecting", "reconnecting");
    assert.equal(states.at(-1).delay, 60);
    window.dispatchEvent(new Event("online"));
    await reconnected(1);
    assert.equal(client.state, "open");
    await client.close();
  } finally {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  }
});

for (const code of [4400, 1003, 1007, 1009]) {
  test(`after ${code} the client does not reconnect: closed, pending sends reject`, async () => {
    const { client, states, socket } = await connected();
    const joined = client.join("R");
    socket.joined("R", 0);
    await joined;
    const sending = client.send("R", "never acked");
    socket.serverClose(code, "client bug");
    const error = await sending.catch((e) => e);
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.code, code);
    assert.deepEqual(
      [states.at(-1).state, states.at(-1).code],
      ["closed", code],
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(FakeSocket.sockets.length, 1);
    assert.equal(client.state, "closed");
  });
}

test("after 4401 a fixed token is not reused: the client closes with AuthenticationError", async () => {
  const { client, states, socket } = await connected("fixed");
  socket.serverClose(4401, "token expired");
  await until(() => client.state === "closed", "closed");
  assert.equal(states.at(-1).code, 4401);
  assert.ok(states.at(-1).error instanceof AuthenticationError);
  assert.equal(FakeSocket.sockets.length, 1);
});

test("after 4401 the provider is asked for a fresh token; the same one again ends the client", async () => {
  const given = ["first", "second", "second"];
  const asked = [];
  const provider = async (options) => {
    asked.push(options);
    return given.shift();
  };
  const { client, socket } = await connected(provider);
  socket.serverClose(4401);
  const fresh = await reconnected(1);
  assert.equal(fresh.frames("auth")[0].token, "second");
  assert.deepEqual(asked.at(-1), { forceRefresh: true });
  assert.equal(client.state, "open");
  fresh.serverClose(4401);
  await until(() => client.state === "closed", "closed");
  assert.equal(FakeSocket.sockets.length, 2);
  await client.close();
});

test("a connection whose first ready never comes rejects connect() on a fatal close", async () => {
  const client = new Client("http://chat.test", "t", { WebSocket: FakeSocket, backoff: FAST });
  const connecting = client.connect();
  await until(() => FakeSocket.latest?.frames("auth").length === 1, "auth");
  FakeSocket.latest.serverClose(4401);
  await assert.rejects(connecting, AuthenticationError);
});

test("after left with a reason the room is forgotten: not rejoined, its sends rejected", async () => {
  const { client, socket } = await connected();
  for (const room of ["R", "S"]) {
    const joined = client.join(room);
    socket.joined(room, 0);
    await joined;
  }
  const left = [];
  client.on("left", (event) => left.push(event));
  socket.serverClose(1006);
  const sending = client.send("R", "into a room about to go");
  const fresh = await reconnected(1);
  fresh.deliver({ type: "left", room: "R", reason: "removed" });
  const error = await sending.catch((e) => e);
  assert.ok(error instanceof SendError);
  assert.equal(error.code, "removed");
  assert.deepEqual(left, [{ type: "left", room: "R", reason: "removed" }]);
  assert.equal(client.lastSeq("R"), undefined);
  fresh.serverClose(4503);
  const third = await reconnected(2);
  await until(() => third.frames("join").length === 1, "the rejoin");
  assert.deepEqual(
    third.frames("join").map((frame) => frame.room),
    ["S"],
  );
  await client.close();
});

test("a send already written when the room is taken away still gets its ack", async () => {
  const { client, socket } = await connected();
  for (const room of ["R", "S"]) {
    const joined = client.join(room);
    socket.joined(room, 0);
    await joined;
  }
  const acked = client.send("R", "stored just before", { clientId: "a" });
  const orphan = client.send("S", "never answered", { clientId: "b" });
  socket.deliver({ type: "left", room: "R", reason: "removed" });
  socket.deliver({ type: "ack", room: "R", seq: 1, client_id: "a", re: "s:a" });
  assert.equal(await acked, 1);
  socket.deliver({ type: "left", room: "S", reason: "deleted" });
  socket.serverClose(1011);
  await reconnected(1);
  const error = await orphan.catch((e) => e);
  assert.ok(error instanceof SendError);
  assert.equal(error.code, "left");
  await client.close();
});

test("events of joined rooms pass through as the server's frames, full deltas marked", async () => {
  const { client, socket } = await connected();
  const joined = client.join("R");
  socket.joined("R", 0);
  await joined;
  const seen = [];
  for (const kind of ["ai.start", "ai.delta", "ai.end", "typing", "presence"]) {
    client.on(kind, (event) => seen.push(event));
  }
  const frames = [
    { type: "ai.start", room: "R", gen: "G", reply_to: 1, model: "m" },
    { type: "ai.delta", room: "R", gen: "G", i: 3, text: "Hello, Ada", full: true },
    { type: "ai.delta", room: "R", gen: "G", i: 4, text: "!" },
    { type: "typing", room: "R", user: { id: "u2", name: "Bob" } },
    { type: "typing", room: "elsewhere", user: { id: "u2", name: "Bob" } },
  ];
  for (const frame of frames) socket.deliver(frame);
  assert.deepEqual(seen, frames.slice(0, 4));
  await client.close();
});

test("a send refused with unavailable or a busy room is retried with the same client_id", async () => {
  const { client, socket } = await connected();
  const joined = client.join("R");
  socket.joined("R", 0);
  await joined;
  const sending = client.send("R", "hi", { clientId: "c" });
  socket.deliver({ type: "error", code: "unavailable", message: "storing failed", re: "s:c" });
  await until(() => socket.frames("send").length === 2, "the first retry");
  socket.deliver({ type: "error", code: "rate_limited", message: "the room is busy", re: "s:c" });
  await until(() => socket.frames("send").length === 3, "the second retry");
  assert.deepEqual(
    socket.frames("send").map((frame) => frame.client_id),
    ["c", "c", "c"],
  );
  socket.deliver({ type: "ack", room: "R", seq: 1, client_id: "c", re: "s:c" });
  assert.equal(await sending, 1);

  const refused = client.send("R", "again and again", { clientId: "d" });
  for (let retry = 0; retry <= 3; retry++) {
    await until(() => socket.frames("send").length === 4 + retry, `send ${retry}`);
    socket.deliver({ type: "error", code: "unavailable", message: "down", re: "s:d" });
  }
  const error = await refused.catch((e) => e);
  assert.ok(error instanceof SendError);
  assert.deepEqual([error.code, error.clientId], ["unavailable", "d"]);
  await client.close();
});

test("an error that refuses only the assistant's answer does not fail the send", async () => {
  const { client, socket } = await connected();
  const joined = client.join("R");
  socket.joined("R", 0);
  await joined;
  const errors = [];
  client.on("error", (event) => errors.push(event.code));
  const sending = client.send("R", "@ai hi", { ai: true, clientId: "c" });
  const refused = { type: "error", code: "quota_exceeded", message: "allowance used", re: "s:c" };
  socket.deliver({ ...refused, room: "R", seq: 1 });
  socket.deliver({ type: "ack", room: "R", seq: 1, client_id: "c", re: "s:c" });
  assert.equal(await sending, 1);
  // The same refusal after the ack (the usual order) still reaches the listeners.
  socket.deliver({ ...refused, code: "rate_limited", room: "R", seq: 1 });
  assert.deepEqual(errors, ["quota_exceeded", "rate_limited"]);
  await client.close();
});

test("a quiet client pings, and a server that stops answering is dropped and redialled", async () => {
  const client = new Client("http://chat.test", "t", { WebSocket: FakeSocket, backoff: FAST });
  const states = [];
  client.on("state", (event) => states.push(event));
  const connecting = client.connect();
  await until(() => FakeSocket.latest?.frames("auth").length === 1, "auth");
  const socket = FakeSocket.latest;
  socket.ready({ heartbeat: 0.05 });
  await connecting;
  await until(() => socket.frames("ping").length >= 1, "a ping");
  await until(() => FakeSocket.sockets.length === 2, "a new connection after the silence");
  assert.equal(socket.closedWith, 1000);
  assert.deepEqual(
    states.filter((s) => s.state === "reconnecting").map((s) => s.code),
    [1006],
  );
  await client.close();
});

test("a quiet connection whose pings are answered stays up", async () => {
  const client = new Client("http://chat.test", "t", { WebSocket: FakeSocket, backoff: FAST });
  const connecting = client.connect();
  await until(() => FakeSocket.latest?.frames("auth").length === 1, "auth");
  const socket = FakeSocket.latest;
  socket.ready({ heartbeat: 0.05 });
  await connecting;
  let answered = 0;
  const answer = setInterval(() => {
    const pings = socket.frames("ping");
    for (; answered < pings.length; answered++) {
      socket.deliver({ type: "pong", re: pings[answered].id });
    }
  }, 5);
  await new Promise((resolve) => setTimeout(resolve, 400));
  clearInterval(answer);
  assert.ok(socket.frames("ping").length >= 3, `${socket.frames("ping").length} pings`);
  assert.equal(FakeSocket.sockets.length, 1);
  assert.equal(client.state, "open");
  await client.close();
});

test("before the token expires the client re-auths on the same socket, refreshing if need be", async () => {
  const now = Date.now() / 1000;
  const first = fakeJwt({ iat: now, exp: now + 0.5 });
  const second = fakeJwt({ iat: now, exp: now + 900 });
  const asked = [];
  const given = [first, first, second];
  const provider = async (options) => {
    asked.push(options);
    return given.shift();
  };
  const { client, socket } = await connected(provider);
  await until(() => socket.frames("auth").length === 2, "the re-auth");
  const reauth = socket.frames("auth")[1];
  assert.equal(reauth.token, second);
  assert.deepEqual(asked.slice(1), [{ forceRefresh: false }, { forceRefresh: true }]);
  socket.deliver({ type: "ready", user: { id: "u1", name: "Ada" }, session: "s1", re: reauth.id });
  await until(() => client.reauths === 1, "the re-auth's ready");
  assert.equal(client.connections, 1);
  assert.equal(FakeSocket.sockets.length, 1);
  assert.equal(client.state, "open");
  await client.close();
});

test("tokenExpiry reads a JWT's exp without verifying it", () => {
  const payload = Buffer.from(JSON.stringify({ sub: "u", exp: 1700000000 })).toString("base64url");
  assert.equal(tokenExpiry(`x.${payload}.y`), 1700000000);
  assert.equal(tokenExpiry("not a jwt"), undefined);
});
