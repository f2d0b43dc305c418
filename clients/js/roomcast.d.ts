// Types of roomcast.js: the API and the server's event frames (docs/protocol.md, section 4).

export interface User {
  id: string;
  name: string;
}

export interface Author {
  /** null for the assistant */
  id: string | null;
  name: string;
  kind: "user" | "assistant";
}

export interface Usage {
  input_tokens: number | null;
  output_tokens: number | null;
}

export type Finish = "stop" | "length" | "safety" | "cancelled";

export interface RoomMessageEvent {
  type: "message";
  room: string;
  seq: number;
  id: string;
  client_id: string | null;
  author: Author;
  body: string;
  ts: string;
  /** assistant answers only */
  reply_to?: number;
  gen?: string;
  model?: string;
  finish?: Finish;
  usage?: Usage;
}

export interface AiStartEvent {
  type: "ai.start";
  room: string;
  gen: string;
  reply_to: number;
  model: string;
}

export interface AiDeltaEvent {
  type: "ai.delta";
  room: string;
  gen: string;
  i: number;
  text: string;
  /** true: `text` is the whole answer so far (replace, do not append) */
  full?: boolean;
}

export interface AiEndEvent {
  type: "ai.end";
  room: string;
  gen: string;
  seq: number;
  finish: Finish;
  usage: Usage;
}

export interface AiErrorEvent {
  type: "ai.error";
  room: string;
  gen: string;
  code: "unavailable" | "rate_limited" | "blocked" | "stalled" | "interrupted" | "internal" | string;
  message: string;
}

export interface PresenceEvent {
  type: "presence";
  room: string;
  user: User;
  state: "online" | "offline";
}

export interface TypingEvent {
  type: "typing";
  room: string;
  user: User;
}

export interface LeftEvent {
  type: "left";
  room: string;
  /** absent on the reply to your own `leave` (its `re` is `l:<room>`); else forget the room */
  reason?: "deleted" | "removed" | string;
  re?: string | number;
}

export interface ServerErrorEvent {
  type: "error";
  code: string;
  message: string;
  re?: string | number;
  /** with `seq`: your message `seq` in `room` is stored, only the assistant's answer is refused */
  room?: string;
  seq?: number;
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export interface StateEvent {
  state: ConnectionState;
  /** reconnect attempts since the last stable connection ("reconnecting") */
  attempt?: number;
  /** seconds before the next attempt ("reconnecting") */
  delay?: number;
  /** the close code that ended the connection ("reconnecting", "closed") */
  code?: number;
  reason?: string;
  /** what stopped the client for good ("closed"), null after close() */
  error?: RoomcastError | null;
}

export interface EventMap {
  state: StateEvent;
  message: RoomMessageEvent;
  "ai.start": AiStartEvent;
  "ai.delta": AiDeltaEvent;
  "ai.end": AiEndEvent;
  "ai.error": AiErrorEvent;
  presence: PresenceEvent;
  typing: TypingEvent;
  left: LeftEvent;
  error: ServerErrorEvent;
}

/** Called for every (re)auth; `forceRefresh` after the server closed with 4401. */
export type TokenProvider = (options?: { forceRefresh?: boolean }) => Promise<string>;

export interface BackoffOptions {
  /** seconds; the first wait is random in [0, initial] (default 0.5) */
  initial?: number;
  /** seconds; the cap (default 30) */
  max?: number;
  /** seconds; the first bound after 4429 (default 5) */
  slowInitial?: number;
  random?: () => number;
}

export interface ClientOptions {
  /** defaults to globalThis.WebSocket */
  WebSocket?: typeof globalThis.WebSocket;
  backoff?: BackoffOptions;
  /** seconds before the token's exp to re-`auth` (at most a fifth of its lifetime); 60 */
  reauthBefore?: number;
}

export interface Joined {
  room: string;
  seq: number;
  members: User[];
}

export interface SendOptions {
  ai?: boolean;
  clientId?: string;
}

export declare class Client {
  constructor(
    baseUrl: string,
    token: string | TokenProvider | RefreshingToken,
    options?: ClientOptions,
  );
  readonly state: ConnectionState;
  /** from `ready` */
  readonly user: User | undefined;
  readonly session: string | undefined;
  /** seconds, from `ready` */
  readonly heartbeat: number | undefined;
  readonly reauths: number;
  readonly connections: number;
  on<K extends keyof EventMap>(kind: K, handler: (event: EventMap[K]) => void): this;
  off<K extends keyof EventMap>(kind: K, handler: (event: EventMap[K]) => void): this;
  connect(): Promise<void>;
  close(): Promise<void>;
  join(room: string, options?: { since?: number }): Promise<Joined>;
  /**
   * Left for the application at once: the room's events are dropped, `send` and `typing`
   * refuse it, no reconnect joins it. Resolves on the server's `left` reply (a busy room's
   * `rate_limited` or `unavailable` is retried with jittered backoff from 100 ms to 2 s),
   * when the connection that was in the room ends, or at once for a room not joined.
   * Rejects RequestError on another refusal, or with code "joined" when `join(room)` comes
   * before the reply.
   */
  leave(room: string): Promise<void>;
  lastSeq(room: string): number | undefined;
  send(room: string, body: string, options?: SendOptions): Promise<number>;
  typing(room: string): void;
  cancel(room: string, gen: string): Promise<void>;
  /** round trip in milliseconds */
  ping(): Promise<number>;
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
  token_type?: string;
  expires_in?: number;
}

export declare class RefreshingToken {
  constructor(baseUrl: string, tokens: Tokens, options?: { onChange?: (tokens: Tokens) => void });
  readonly tokens: Tokens;
  /** a TokenProvider (bound) */
  token(options?: { forceRefresh?: boolean }): Promise<string>;
  refresh(): Promise<Tokens>;
}

export declare function passwordLogin(
  baseUrl: string,
  email: string,
  password: string,
  options?: { totp?: string; onChange?: (tokens: Tokens) => void },
): Promise<RefreshingToken>;

export declare class Backoff {
  constructor(options?: BackoffOptions);
  attempts: number;
  next(options?: { slow?: boolean }): number;
  reset(): void;
}

export declare function tokenClaims(token: string): Record<string, unknown>;
export declare function tokenExpiry(token: string): number | undefined;

export declare const FATAL_CODES: readonly number[];
export declare const RETRY_CODES: readonly number[];

export declare class RoomcastError extends Error {}
export declare class RequestError extends RoomcastError {
  code: string;
  status?: number;
}
export declare class SendError extends RequestError {
  room: string;
  clientId: string;
}
export declare class ConnectionClosedError extends RoomcastError {
  code?: number;
}
/** `code` is 4401; a REST refusal (login, refresh) also has `status` 401 and `reason`. */
export declare class AuthenticationError extends ConnectionClosedError {
  status?: number;
  /** the REST error code: "unauthorized", or "totp_required" at login */
  reason?: string;
}
export declare class ProtocolError extends ConnectionClosedError {}
