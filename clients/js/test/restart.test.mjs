// A server restart loses nothing and repeats nothing: sends made just before and while the
// server is down are stored once, acked, and reach the other member once, in seq order.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client } from "../roomcast.js";
import { record, restartServer, setup, until, URL_ } from "./helpers.mjs";

const FAST = { initial: 0.1, max: 0.5 };

for (const stop of ["kill", "terminate"]) {
  test(`a message sent while the server restarts (${stop}) arrives exactly once`, async () => {
    const { room, users } = await setup({ users: 2 });
    const [ada, bob] = users;
    const alice = new Client(URL_, ada.access_token, { backoff: FAST });
    const bert = new Client(URL_, bob.access_token, { backoff: FAST });
    try {
      await alice.connect();
      await bert.connect();
      await alice.join(room);
      await bert.join(room);
      const bertStates = record(bert, ["state"]);
      const heard = record(bert, ["message"]);

      const before = alice.send(room, "just before the stop");
      const restarted = restartServer(stop, 0.5);
      await until(() => alice.state === "reconnecting", "alice to notice the stop");
      const during = alice.send(room, "while the server is down");
      await restarted;
      const seqs = [await before, await during];
      seqs.push(await alice.send(room, "after the restart"));

      await until(() => heard.length >= 3, "bert to hear all three messages");
      await bert.send(room, "bert's last word"); // its own message comes after the others
      await until(() => heard.length >= 4, "bert's own message");
      assert.deepEqual(
        heard.map((m) => [m.seq, m.body]),
        [
          [1, "just before the stop"],
          [2, "while the server is down"],
          [3, "after the restart"],
          [4, "bert's last word"],
        ],
      );
      assert.deepEqual(seqs, [1, 2, 3]);
      const expected = stop === "kill" ? 1006 : 4503;
      assert.ok(
        bertStates.some((s) => s.state === "reconnecting" && s.code === expected),
        JSON.stringify(bertStates),
      );
      assert.equal(bert.state, "open");
      assert.equal(alice.connections, 2);

      const history = await fetch(`${URL_}/api/v1/rooms/${room}/messages`, {
        headers: { Authorization: `Bearer ${ada.access_token}` },
      });
      const stored = (await history.json()).items.map((item) => item.body);
      assert.deepEqual(stored, [
        "just before the stop",
        "while the server is down",
        "after the restart",
        "bert's last word",
      ]);
    } finally {
      await alice.close();
      await bert.close();
    }
  });
}
