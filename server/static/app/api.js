// The REST API under /api/v1, with the signed-in user's access token attached.
// Errors come back as ApiError carrying the server's stable `code` and its message.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details || null;
  }
}

// Filled in by main.js after login: the user, a RefreshingToken and the one Client.
export const session = { me: null, tokens: null, client: null };

let expired = () => {};

// main.js: what to do when the sign-in can no longer be refreshed (log out).
export function onExpired(handler) {
  expired = handler;
}

async function sessionToken() {
  if (!session.tokens) return null;
  try {
    return await session.tokens.token();
  } catch (error) {
    if (error.name !== "AuthenticationError") throw error;
    expired();
    throw new ApiError(401, "unauthorized", "Your sign-in has ended. Please log in again.");
  }
}

// `options.token`: an access token to send instead of the session's (logging out).
export async function api(method, path, body, options = {}) {
  const headers = { Accept: "application/json" };
  const token = options.token || (await sessionToken());
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection and try again.");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || "internal",
      error.message || `The server answered ${response.status}.`,
      error.details,
    );
  }
  return data;
}
