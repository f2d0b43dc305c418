// Tokens: an expiring access token is refreshed and re-sent on the open socket (the rooms
// stay joined); after 4401 the client reconnects only with a fresh token.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthenticationError,
  Client,
  RefreshingToken,
  passwordLogin,
  tokenExpiry,
} from "../roomcast.js";
import { next, record, setup, shortToken, until, URL_ } from "./helpers.mjs";

test("an expiring token is refreshed and re-sent on the open socket: the rooms stay", async () => {
  // The server closes a connection within about a second of its token's exp unless it
  // re-auths (the suite runs it with no grace). This token lives 3 seconds.
  const { room, users } = await setup({ users: 2 });
  const [ada, bob] = users;
  const short = await shortToken(ada.access_token, 3);
  const changes = [];
  const refreshing = new RefreshingToken(
    URL_,
    { access_token: short, refresh_token: ada.refresh_token },
    { onChange: (tokens) => changes.push(tokens) },
  );
  let calls = 0;
  const provider = (options) => (calls++ === 0 ? Promise.resolve(short) : refreshing.token(options));
  const expiring = new Client(URL_, provider, { reauthBefore: 60 });
  // The control: the same kind of token, and nothing to refresh it with.
  const control = new Client(URL_, await shortToken(bob.access_token, 3));
  const listener = new Client(URL_, bob.access_token);
  try {
    const states = record(expiring, ["state"]);
    const controlStates = record(control, ["state"]);
    for (const client of [expiring, control, listener]) {
      await client.connect();
      await client.join(room);
    }
    const session = expiring.session;
    await until(() => control.state === "closed", "the control to be closed", 15_000);
    assert.equal(controlStates.at(-1).code, 4401);
    assert.ok(controlStates.at(-1).error instanceof AuthenticationError);
    const exp = tokenExpiry(short);
    await until(() => Date.now() / 1000 > exp + 2, "past the server's check of the old token");

    assert.ok(expiring.reauths >= 1, `reauths: ${expiring.reauths}`);
    assert.equal(expiring.connections, 1);
    assert.equal(expiring.session, session);
    assert.deepEqual(
      states.map((s) => s.state),
      ["connecting", "open"],
    );
    assert.equal(changes.length, 1);
    assert.equal(refreshing.tokens.access_token, changes[0].access_token);
    assert.notEqual(changes[0].refresh_token, ada.refresh_token);

    const heard = next(listener, "message", (m) => m.body === "still in the room");
    const seq = await expiring.send(room, "still in the room");
    assert.equal((await heard).seq, seq);
    const back = next(expiring, "message", (m) => m.body === "and still hearing it");
    await listener.send(room, "and still hearing it");
    assert.equal((await back).author.id, bob.id);
  } finally {
    for (const client of [expiring, control, listener]) await client.close();
  }
});

test("after 4401 the client reconnects with a refreshed token and rejoins its rooms", async () => {
  // A password change closes every websocket of the user with 4401; the calling sign-in's
  // refresh token still works, so a RefreshingToken brings the client back.
  const { room, users } = await setup({ users: 2 });
  const [ada, bob] = users;
  const changes = [];
  const tokens = await passwordLogin(URL_, ada.email, ada.password, {
    onChange: (pair) => changes.push(pair),
  });
  const client = new Client(URL_, tokens, { backoff: { initial: 0.1, max: 0.5 } });
  const fixed = new Client(URL_, ada.access_token);
  const listener = new Client(URL_, bob.access_token);
  try {
    const states = record(client, ["state"]);
    for (const each of [client, fixed, listener]) {
      await each.connect();
      await each.join(room);
    }
    await listener.send(room, "before");
    await until(() => client.lastSeq(room) === 1, "the first message");

    const changed = await fetch(`${URL_}/api/v1/auth/password/change`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${tokens.tokens.access_token}`,
        "Content-Type": "application/json",
      },
      body: JSON.stringify({ current_password: ada.password, new_password: "Another-horse-77" }),
    });
    assert.equal(changed.status, 204);
    await until(() => client.connections === 2 && client.state === "open", "the reconnect");
    assert.ok(states.some((s) => s.state === "reconnecting" && s.code === 4401));
    assert.equal(changes.length, 1, "one refresh for the reconnect");
    await until(() => fixed.state === "closed", "the fixed-token client to stop");

    const heard = record(client, ["message"]);
    await listener.send(room, "after");
    await until(() => heard.length === 1, "a message after the reconnect");
    assert.deepEqual([heard[0].seq, heard[0].body], [2, "after"]);
  } finally {
    for (const each of [client, fixed, listener]) await each.close();
  }
});

test("refreshes asked for at once spend the refresh token once", async () => {
  const { users } = await setup({ users: 1 });
  const { access_token, refresh_token } = users[0];
  const changes = [];
  const tokens = new RefreshingToken(
    URL_,
    { access_token, refresh_token },
    { onChange: (pair) => changes.push(pair) },
  );
  const [a, b, c] = await Promise.all([
    tokens.refresh(),
    tokens.token({ forceRefresh: true }),
    tokens.refresh(),
  ]);
  assert.equal(changes.length, 1);
  assert.equal(a.access_token, b);
  assert.equal(c, a);
  assert.notEqual(b, access_token);
  const me = await fetch(`${URL_}/api/v1/me`, { headers: { Authorization: `Bearer ${b}` } });
  assert.equal(me.status, 200, "the sign-in was not revoked by a spent refresh token");
});

test("a refresh refused with 401 rejects AuthenticationError", async () => {
  const tokens = new RefreshingToken(URL_, { access_token: "x", refresh_token: "spent" });
  await assert.rejects(tokens.token({ forceRefresh: true }), AuthenticationError);
  const refused = await passwordLogin(URL_, "nobody@example.com", "wrong").catch((e) => e);
  assert.ok(refused instanceof AuthenticationError);
  assert.deepEqual([refused.status, refused.reason], [401, "unauthorized"]);
});
