// Shared by the tests that run against a real Roomcast: tests/clients/test_js_client.py
// starts it and sets ROOMCAST_URL and ROOMCAST_CONTROL (its control endpoint).

export const URL_ = process.env.ROOMCAST_URL;
const CONTROL = process.env.ROOMCAST_CONTROL;

async function control(path, body = {}) {
  if (!URL_ || !CONTROL) {
    throw new Error("no Roomcast to test against: make pytest ARGS=tests/clients/test_js_client.py");
  }
  const response = await fetch(CONTROL + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`control ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** Fresh users in one team and a room of it: {room, team, users: [{id, name, email, ...}]}. */
export const setup = ({ users = 2, assistant = "off" } = {}) =>
  control("/setup", { users, assistant });

/** `token` re-signed by the server's key to expire in `seconds`. */
export const shortToken = async (token, seconds) =>
  (await control("/short-token", { token, seconds })).token;

/** Stop the server (`kill`: a crash, 1006; `terminate`: 4503) and start it again. */
export const restartServer = (stop = "kill", down = 0) => control("/restart", { stop, down });

/** Every event of `kinds` the client emits, in order, from now on. */
export function record(client, kinds) {
  const seen = [];
  for (const kind of kinds) client.on(kind, (event) => seen.push({ kind, ...event }));
  return seen;
}

/** Resolves once `predicate()` holds (checked on every tick); rejects after `ms`. */
export async function until(predicate, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The first event of `kind` for which `match(event)` holds, from now on. */
export function next(client, kind, match = () => true, ms = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off(kind, handler);
      reject(new Error(`no ${kind} event within ${ms} ms`));
    }, ms);
    const handler = (event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      client.off(kind, handler);
      resolve(event);
    };
    client.on(kind, handler);
  });
}
