/**
 * Accounts over HTTP (docs/auth.md): register, login, refresh, nonce and logout on `/auth/*`. The token is kept
 * and refreshed before it expires (by default once 80% of its lifetime has passed, measured on this client's
 * clock from when it arrived, so a skewed client clock does not matter). Give an `Auth` to `GateClient` as its
 * `auth` option and every reconnect binds with the current token.
 */

import { Emitter } from "./emitter.js";
import { ClientErrorCodes, GameServerError, HttpError } from "./errors.js";

export interface Session {
  uid: number;
  token: string;
}

export interface Nonce {
  nonce: string;
  expires_in: number;
}

export interface FetchResponse {
  readonly status: number;
  text(): Promise<string>;
}

/** `fetch`'s shape as the SDK uses it; the global `fetch` fits (browsers, Node 18+). A WeChat mini-game wraps
 * `wx.request` (docs/clients.md). */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
) => Promise<FetchResponse>;

export interface AuthOptions {
  /** The HTTP listener, e.g. `http://127.0.0.1:8000`. */
  url: string;
  fetch?: FetchLike;
  /** Refresh once this fraction of the token's lifetime has passed (default 0.8). */
  refreshAt?: number;
  /** Refresh automatically (default true). */
  autoRefresh?: boolean;
  /** After a refresh that failed for a reason other than the token itself, retry after this many ms (5000). */
  retryDelay?: number;
}

export interface AuthEvents {
  /** A new token: after register, login, refresh or `use()`. */
  token: [Session];
  /** A refresh failed but will be retried (network, rate limit, server busy). */
  refreshFailed: [GameServerError];
  /** The token can no longer be refreshed (expired, revoked, session too old): log in again. */
  expired: [GameServerError];
}

export class Auth {
  private readonly base: string;
  private readonly fetchFn: FetchLike;
  private readonly refreshAt: number;
  private readonly autoRefresh: boolean;
  private readonly retryDelay: number;
  private readonly events = new Emitter<AuthEvents>();
  private session: Session | null = null;
  private expiresAt = 0; // this client's clock, ms
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: AuthOptions) {
    this.base = options.url.replace(/\/+$/, "");
    const fetchFn = options.fetch ?? (globalThis as unknown as { fetch?: FetchLike }).fetch;
    if (fetchFn === undefined) {
      throw new TypeError("no global fetch here: pass one as the `fetch` option");
    }
    this.fetchFn = fetchFn;
    this.refreshAt = options.refreshAt ?? 0.8;
    this.autoRefresh = options.autoRefresh ?? true;
    this.retryDelay = options.retryDelay ?? 5_000;
  }

  get token(): string | null {
    return this.session?.token ?? null;
  }

  get uid(): number | null {
    return this.session?.uid ?? null;
  }

  on<K extends keyof AuthEvents>(event: K, listener: (...args: AuthEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  /** Create an account (`display_name` defaults to the username as typed); keeps its token. */
  async register(username: string, password: string, displayName?: string): Promise<Session> {
    const body: Record<string, string> = { username, password };
    if (displayName !== undefined) {
      body.display_name = displayName;
    }
    return this.use((await this.post("/auth/register", body)) as Session);
  }

  async login(username: string, password: string): Promise<Session> {
    return this.use((await this.post("/auth/login", { username, password })) as Session);
  }

  /** Trade the current token for a fresh one now (done automatically before expiry). */
  async refresh(): Promise<Session> {
    return this.use((await this.post("/auth/refresh", undefined, this.requireToken())) as Session);
  }

  /** A single-use nonce for the chat edge's `LOGIN`. */
  async nonce(): Promise<Nonce> {
    return (await this.post("/auth/nonce", undefined, this.requireToken())) as Nonce;
  }

  /** Revoke every token of this player (every device) and forget the session. */
  async logout(): Promise<void> {
    await this.post("/auth/logout", undefined, this.requireToken());
    this.forget();
  }

  /** Keep `session` (e.g. one stored from an earlier run, or from a gate `auth.login`) and schedule its refresh. */
  use(session: Session): Session {
    this.session = { uid: session.uid, token: session.token };
    this.schedule(session.token);
    this.events.emit("token", this.session);
    return this.session;
  }

  /** Drop the session and stop refreshing. */
  forget(): void {
    this.session = null;
    this.stop();
  }

  /** Stop the refresh timer (the session is kept). */
  stop(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private requireToken(): string {
    if (this.session === null) {
      throw new GameServerError("unauthorized", "not logged in: register or login first");
    }
    return this.session.token;
  }

  private schedule(token: string): void {
    this.stop();
    const claims = jwtClaims(token);
    if (!this.autoRefresh || typeof claims.exp !== "number" || typeof claims.iat !== "number") {
      return;
    }
    const lifetime = (claims.exp - claims.iat) * 1000;
    this.expiresAt = Date.now() + lifetime;
    this.arm(lifetime * this.refreshAt);
  }

  private arm(delay: number): void {
    this.timer = setTimeout(() => void this.refreshInBackground(), Math.max(0, delay));
    (this.timer as { unref?: () => void }).unref?.(); // a Node bot may exit while a refresh is pending
  }

  private async refreshInBackground(): Promise<void> {
    this.timer = undefined;
    try {
      await this.refresh();
    } catch (error) {
      const failure =
        error instanceof GameServerError ? error : new GameServerError(ClientErrorCodes.DISCONNECTED, String(error));
      const left = this.expiresAt - Date.now();
      if (failure.code === "unauthorized" || left <= 0) {
        this.forget();
        this.events.emit("expired", failure);
        return;
      }
      this.events.emit("refreshFailed", failure);
      this.arm(Math.min(this.retryDelay, left / 2));
    }
  }

  private async post(path: string, body?: Record<string, unknown>, token?: string): Promise<unknown> {
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (token !== undefined) {
      headers.Authorization = `Bearer ${token}`;
    }
    let response: FetchResponse;
    try {
      response = await this.fetchFn(this.base + path, {
        method: "POST",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new GameServerError(ClientErrorCodes.DISCONNECTED, `POST ${path}: ${String(error)}`);
    }
    const text = await response.text();
    let value: unknown = null;
    try {
      value = text === "" ? null : JSON.parse(text);
    } catch {
      throw new HttpError(response.status, ClientErrorCodes.PROTOCOL, `POST ${path}: the answer is not JSON`);
    }
    if (response.status >= 200 && response.status < 300) {
      return value;
    }
    const error = ((value ?? {}) as { error?: { code?: unknown; message?: unknown } }).error ?? {};
    throw new HttpError(response.status, String(error.code ?? "http_error"), String(error.message ?? text));
  }
}

/** The claims of a JWT, unverified (the server verifies; the client only reads `iat` and `exp`). */
export function jwtClaims(token: string): Record<string, unknown> {
  const part = token.split(".")[1];
  if (part === undefined) {
    return {};
  }
  try {
    const claims: unknown = JSON.parse(utf8(base64url(part)));
    return typeof claims === "object" && claims !== null ? (claims as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function base64url(text: string): number[] {
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text.replace(/=+$/, "")) {
    const digit = ALPHABET.indexOf(char === "+" ? "-" : char === "/" ? "_" : char);
    if (digit < 0) {
      throw new TypeError("not base64url");
    }
    value = (value << 6) | digit;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >> bits) & 0xff);
    }
  }
  return bytes;
}

function utf8(bytes: number[]): string {
  return decodeURIComponent(bytes.map((byte) => `%${byte.toString(16).padStart(2, "0")}`).join(""));
}
