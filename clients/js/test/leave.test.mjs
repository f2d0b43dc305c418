// Leaving a room against a scripted server: the room is let go only on the server's `left`
// reply. A busy room's refusal is retried, and a connection lost meanwhile ends the leave.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { RequestError, SendError } from "../roomcast.js";
import { connected, FakeSocket, message, reconnected, until } from "./fake-socket.mjs";

beforeEach(() => FakeSocket.reset());

async function joinAll(client, socket, rooms) {
  for (const room of rooms) {
    const joined = client.join(room);
    socket.joined(room, 0);
    await joined;
  }
}

/** Whether `promise` has settled, after the pending callbacks ran. */
async function settled(promise) {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

test("a leave the busy room refuses is asked again until the server says left", async () => {
  const { client, socket } = await connected();
  await joinAll(client, socket, ["R", "S"]);
  const seen = [];
  for (const kind of ["message", "typing", "left"]) client.on(kind, (event) => seen.push(event));

  const leaving = client.leave("R");
  assert.deepEqual(socket.frames("leave"), [{ type: "leave", room: "R", id: "l:R" }]);
  assert.equal(client.leave("R"), leaving, "a second call waits for the same reply");
  socket.deliver({ type: "error", code: "rate_limited", message: "the room is busy", re: "l:R" });
  await until(() => socket.frames("leave").length === 2, "the first retry");
  socket.deliver({ type: "error", code: "unavailable", message: "try again", re: "l:R" });
  await until(() => socket.frames("leave").length === 3, "the second retry");
  assert.equal(await settled(leaving), false, "the server still has the room");

  // Still in the room on the server; left for the application.
  socket.deliver(message("R", 1));
  socket.deliver({ type: "typing", room: "R", user: { id: "u2", name: "Bob" } });
  assert.equal(client.lastSeq("R"), undefined);
  const refused = await client.send("R", "after leave").catch((error) => error);
  assert.ok(refused instanceof SendError);
  assert.equal(refused.code, "forbidden");

  socket.deliver({ type: "left", room: "R", re: "l:R" });
  assert.equal(await leaving, undefined);
  assert.deepEqual(seen, [{ type: "left", room: "R", re: "l:R" }]);

  socket.serverClose(1011);
  const fresh = await reconnected(1);
  await until(() => fresh.frames("join").length === 1, "the rejoin");
  assert.deepEqual(
    fresh.frames("join").map((frame) => frame.room),
    ["S"],
  );
  await client.close();
});

test("a leave pending when the connection drops is done: the new connection never joins the room", async () => {
  const { client, socket } = await connected();
  await joinAll(client, socket, ["R", "S", "T"]);
  const leaving = client.leave("R");
  socket.deliver({ type: "error", code: "rate_limited", message: "the room is busy", re: "l:R" });
  socket.serverClose(1006); // before the retry
  assert.equal(await leaving, undefined);

  await client.leave("T"); // while disconnected: no socket is in the room
  const fresh = await reconnected(1);
  await until(() => fresh.frames("join").length === 1, "the rejoin");
  fresh.joined("S", 0);
  // Past the first retry's longest wait (100 ms): nothing is asked of the new connection.
  await new Promise((resolve) => setTimeout(resolve, 250));
  assert.deepEqual(
    fresh.sent.filter((frame) => frame.type !== "auth").map((frame) => [frame.type, frame.room]),
    [["join", "S"]],
  );
  assert.deepEqual(socket.frames("leave").length, 1);
  await client.close();
});

test("leaving a room not joined resolves at once, and another refusal rejects", async () => {
  const { client, socket } = await connected();
  assert.equal(await client.leave("never-joined"), undefined);
  assert.deepEqual(socket.frames("leave"), []);

  await joinAll(client, socket, ["R"]);
  const leaving = client.leave("R");
  socket.deliver({ type: "error", code: "invalid", message: "room: too long", re: "l:R" });
  const error = await leaving.catch((e) => e);
  assert.ok(error instanceof RequestError);
  assert.deepEqual([error.code, error.message], ["invalid", "room: too long"]);
  assert.equal(client.lastSeq("R"), undefined);
  await client.close();
});

test("a join before the left reply takes the room back and the leave rejects", async () => {
  const { client, socket } = await connected();
  await joinAll(client, socket, ["R"]);
  socket.deliver(message("R", 3));
  const leaving = client.leave("R");
  const rejoining = client.join("R");
  const error = await leaving.catch((e) => e);
  assert.ok(error instanceof RequestError);
  assert.equal(error.code, "joined");
  assert.deepEqual(
    socket.sent.filter((frame) => frame.type !== "auth").map((frame) => [frame.type, frame.since]),
    [
      ["join", undefined],
      ["leave", undefined],
      ["join", 3], // the server takes these in order: the room ends joined
    ],
  );
  const left = [];
  client.on("left", (event) => left.push(event));
  socket.deliver({ type: "left", room: "R", re: "l:R" });
  socket.joined("R", 4);
  assert.deepEqual(await rejoining, { room: "R", seq: 4, members: [] });
  assert.deepEqual(left, []);
  assert.equal(client.lastSeq("R"), 3);
  await client.close();
});

test("a room taken away while its leave waits ends the leave without a left event", async () => {
  const { client, socket } = await connected();
  await joinAll(client, socket, ["R"]);
  const left = [];
  client.on("left", (event) => left.push(event));
  const leaving = client.leave("R");
  socket.deliver({ type: "error", code: "rate_limited", message: "the room is busy", re: "l:R" });
  socket.deliver({ type: "left", room: "R", reason: "deleted" });
  assert.equal(await leaving, undefined);
  assert.deepEqual(left, []);
  await client.close();
});
