// A member who joins while the assistant is answering gets the text so far in one `full`
// delta, then the live rest: replacing on `full` and appending otherwise gives the answer.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, RequestError } from "../roomcast.js";
import { next, record, setup, until, URL_ } from "./helpers.mjs";

test("a client that joins mid-answer assembles exactly the stored answer", async () => {
  const { room, users } = await setup({ users: 2, assistant: "mention" });
  const asker = new Client(URL_, users[0].access_token);
  const late = new Client(URL_, users[1].access_token);
  try {
    await asker.connect();
    await asker.join(room);
    const askerDeltas = record(asker, ["ai.delta"]);
    const prompt = await asker.send(room, "Tell me about lighthouses and their keepers, please", {
      ai: true,
    });
    await until(() => askerDeltas.length >= 3, "three deltas of the answer");

    await late.connect();
    const frames = record(late, ["ai.start", "ai.delta", "message", "ai.end"]);
    const ended = next(late, "ai.end", () => true, 30_000);
    await late.join(room);
    const end = await ended;

    const [start, full] = frames;
    assert.equal(start.kind, "ai.start");
    assert.equal(start.reply_to, prompt);
    assert.equal(full.kind, "ai.delta");
    assert.equal(full.full, true);
    assert.equal(full.gen, start.gen);
    const seenBefore = askerDeltas.slice(0, 3).map((d) => d.text).join("");
    assert.ok(full.text.startsWith(seenBefore), `${full.text} after ${seenBefore}`);

    let text = "";
    for (const delta of frames.filter((f) => f.kind === "ai.delta")) {
      text = delta.full ? delta.text : text + delta.text;
    }
    const stored = frames.find((f) => f.kind === "message");
    assert.equal(stored.author.kind, "assistant");
    assert.equal(stored.gen, start.gen);
    assert.equal(text, stored.body);
    assert.ok(frames.filter((f) => f.kind === "ai.delta").length > 1, "live deltas followed");
    assert.equal(end.finish, "stop");
    assert.equal(end.seq, stored.seq);
    assert.equal(late.lastSeq(room), stored.seq);
  } finally {
    await asker.close();
    await late.close();
  }
});

test("cancel stops a running answer, which ends cancelled; an unknown gen is not_found", async () => {
  const { room, users } = await setup({ users: 1, assistant: "auto" });
  const client = new Client(URL_, users[0].access_token);
  try {
    await client.connect();
    await client.join(room);
    const started = next(client, "ai.start");
    await client.send(room, "Tell me a long story about the sea");
    const { gen } = await started;
    const ended = next(client, "ai.end", (e) => e.gen === gen);
    await client.cancel(room, gen);
    assert.equal((await ended).finish, "cancelled");
    const unknown = await client.cancel(room, "no-such-gen").catch((e) => e);
    assert.ok(unknown instanceof RequestError);
    assert.equal(unknown.code, "not_found");
  } finally {
    await client.close();
  }
});
