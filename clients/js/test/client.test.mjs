// The basics against a real Roomcast: auth frame and ready, join, send and ack, typing,
// presence, leave, and sends refused by the server.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, SendError } from "../roomcast.js";
import { next, record, setup, until, URL_ } from "./helpers.mjs";

test("two clients join a room and see each other's messages once, in seq order", async () => {
  const { room, users } = await setup({ users: 2 });
  const [ada, bob] = users;
  const alice = new Client(URL_, ada.access_token);
  const bert = new Client(URL_, bob.access_token);
  try {
    const states = record(alice, ["state"]);
    await alice.connect();
    await bert.connect();
    assert.deepEqual(alice.user, { id: ada.id, name: ada.name });
    assert.deepEqual(
      states.map((s) => s.state),
      ["connecting", "open"],
    );

    const first = await alice.join(room);
    assert.equal(first.seq, 0);
    const online = next(alice, "presence", (e) => e.user.id === bob.id);
    const joined = await bert.join(room);
    assert.deepEqual(joined.members.map((m) => m.id).sort(), [ada.id, bob.id].sort());
    assert.equal((await online).state, "online");

    const heard = record(bert, ["message"]);
    const typing = next(bert, "typing");
    alice.typing(room);
    assert.equal((await typing).user.id, ada.id);
    const seqs = [await alice.send(room, "one"), await alice.send(room, "two")];
    seqs.push(await bert.send(room, "three"));
    assert.deepEqual(seqs, [1, 2, 3]);
    await until(() => heard.length === 3, "three messages");
    assert.deepEqual(
      heard.map((m) => [m.seq, m.body, m.author.id, m.author.kind]),
      [
        [1, "one", ada.id, "user"],
        [2, "two", ada.id, "user"],
        [3, "three", bob.id, "user"],
      ],
    );
    assert.equal(typeof heard[0].client_id, "string");
    assert.equal(bert.lastSeq(room), 3);
    assert.equal(bert.lastSeq("no-such-room"), undefined);

    const offline = next(alice, "presence", (e) => e.state === "offline");
    await bert.leave(room);
    assert.equal((await offline).user.id, bob.id);
    assert.equal(bert.lastSeq(room), undefined);
  } finally {
    await alice.close();
    await bert.close();
  }
});

test("a send the server refuses rejects SendError and stores nothing", async () => {
  const { room, users } = await setup({ users: 1 });
  const client = new Client(URL_, users[0].access_token);
  try {
    await client.connect();
    await client.join(room);
    const refused = await client.send(room, "x".repeat(4001), { clientId: "too-long" }).then(
      () => assert.fail("a 4001-character body was accepted"),
      (error) => error,
    );
    assert.ok(refused instanceof SendError);
    assert.equal(refused.code, "invalid");
    assert.equal(refused.clientId, "too-long");
    assert.equal(await client.send(room, "fits"), 1); // nothing was stored before it

    const notJoined = await client.send("not-joined", "hi").catch((error) => error);
    assert.ok(notJoined instanceof SendError);
    assert.equal(notJoined.code, "forbidden");

    const unknown = await client.join("00000000-0000-0000-0000-000000000000").catch((e) => e);
    assert.equal(unknown.code, "not_found");
  } finally {
    await client.close();
  }
});

test("the same clientId is stored once and acked with the first seq", async () => {
  const { room, users } = await setup({ users: 1 });
  const client = new Client(URL_, users[0].access_token);
  try {
    await client.connect();
    await client.join(room);
    const seq = await client.send(room, "once", { clientId: "c-1" });
    assert.equal(await client.send(room, "twice?", { clientId: "c-1" }), seq);
    assert.equal(await client.send(room, "next"), seq + 1);
  } finally {
    await client.close();
  }
});

test("close() ends the client: pending sends reject and the state is closed", async () => {
  const { room, users } = await setup({ users: 1 });
  const client = new Client(URL_, users[0].access_token);
  const states = record(client, ["state"]);
  await client.connect();
  await client.join(room);
  await client.close();
  assert.equal(client.state, "closed");
  assert.equal(states.at(-1).state, "closed");
  await assert.rejects(client.send(room, "after close"), /closed/);
  await assert.rejects(client.join(room), /closed/);
});
