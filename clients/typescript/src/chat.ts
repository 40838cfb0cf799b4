/**
 * The chat edge over WebSocket `/chat` (PROTOCOL.md, "Chat edge: line protocol"; docs/chat.md): one text frame
 * per line, a 10-byte command field then the payload. The client fetches a single-use nonce, sends `LOGIN`,
 * and after `OK` the player is in their world's public channel and their family's channel (the server joins
 * them: there is no JOIN line). Messages arrive as typed `public` / `family` events. `history()` asks for the
 * channel's last messages (PROTOCOL.md, "Chat history"); HISTORY lines nobody asked for (`chat.history_on_join`)
 * arrive as `history` events. Lines the server may add later arrive as `line` events, and `send()` writes any
 * command, so the API is open to them. A dropped connection reconnects with backoff and a fresh nonce, unless
 * the server revoked the session.
 */

import { backoffDelay, reconnectOptions, type ReconnectOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { CallTimeoutError, ChatError, ClientErrorCodes, ConnectionError, GameServerError } from "./errors.js";
import { OPEN, openSocket, type SocketLike, type WebSocketClass } from "./socket.js";

export const COMMAND_SIZE = 10;

export type ChatChannel = "public" | "family";

/** The player as the chat edge knows them (the `OK` after `LOGIN`). */
export interface ChatIdentity {
  uid: number;
  name: string;
  world: number;
  family: number | null;
}

/** A message delivered on a channel, live or from the history; `uid` 0 marks the server's own messages. */
export interface ChatMessage {
  channel: ChatChannel;
  /** Unique across the server's processes: names the line for `chat.report`. */
  id: string;
  uid: number;
  name: string;
  text: string;
  /** Server time in ms since the epoch. */
  ts: number;
}

/** A `HISTORY` line: a channel's last messages, oldest first (empty when it has none). */
export interface ChannelHistory {
  channel: ChatChannel;
  lines: ChatMessage[];
}

export interface HistoryOptions {
  /** Milliseconds to wait for the answer (the client's `timeout`, 15000 by default). */
  timeout?: number;
}

export interface ChatOptions {
  /** `ws://host:8881/chat`. */
  url: string;
  /** Fetches a fresh single-use nonce for each (re)connect, e.g. `() => auth.nonce()`. */
  nonce: () => Promise<string | { nonce: string }>;
  WebSocket?: WebSocketClass;
  /** Reconnect after a drop (default true, as the gate client). */
  reconnect?: boolean | ReconnectOptions;
  /** Send `PING` this often in ms so that the server's idle timeout (300 s) never closes us (60000; 0: never). */
  pingInterval?: number;
  /** Give up an attempt that has not logged in within this many ms, and try again (10000). */
  connectTimeout?: number;
  /** Default ms to wait for the answer to a request such as `history()` (15000). */
  timeout?: number;
}

export type ChatState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface ChatEvents {
  state: [ChatState];
  /** Logged in (again, after a reconnect): the identity the server answered `OK` with. */
  login: [ChatIdentity];
  /** Every message, on either channel. */
  message: [ChatMessage];
  public: [ChatMessage];
  family: [ChatMessage];
  /** A `HISTORY` line nobody asked for: the server's catch-up after login (`chat.history_on_join` > 0). */
  history: [ChannelHistory];
  /** An `ERROR <code>` line: `not_in_family`, `rate_limited`, `unavailable`, `unauthorized`. */
  error: [ChatError];
  pong: [];
  /** Any other line from the server: (command, payload). */
  line: [string, string];
  disconnected: [{ code: number; reason: string }];
  reconnecting: [{ attempt: number; delay: number }];
}

interface Waiter {
  resolve: (identity: ChatIdentity) => void;
  reject: (error: Error) => void;
}

interface HistoryWaiter {
  channel: ChatChannel;
  resolve: (history: ChannelHistory) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** The `ERROR` codes that answer a `HISTORY` request (a bad channel or count; the history store down): a line
 * said on a channel is refused with other codes (`not_in_family`, `rate_limited`, `muted`, ...). */
const HISTORY_ERRORS = new Set(["bad_request", "unavailable"]);

/** A line as the chat edge reads it: the command left-aligned in 10 characters, then the payload. */
export function chatLine(command: string, payload = ""): string {
  if (command.length > COMMAND_SIZE) {
    throw new RangeError(`a chat command has at most ${COMMAND_SIZE} characters`);
  }
  if (/[\r\n]/.test(payload)) {
    throw new RangeError("a chat payload holds no CR or LF");
  }
  return command.padEnd(COMMAND_SIZE, " ") + payload;
}

export function parseChatLine(line: string): [string, string] {
  return [line.slice(0, COMMAND_SIZE).trimEnd(), line.slice(COMMAND_SIZE)];
}

function channelOf(value: unknown): ChatChannel {
  if (value !== "public" && value !== "family") {
    throw new TypeError(`unknown chat channel ${JSON.stringify(value)}`);
  }
  return value;
}

/** A message's JSON payload (the `PUBLIC` / `FAMILY` line, or one of a `HISTORY` line's `lines`), checked. */
export function parseChatMessage(channel: ChatChannel, value: unknown): ChatMessage {
  const m = value as Record<string, unknown> | null;
  if (
    typeof m !== "object" ||
    m === null ||
    typeof m.id !== "string" ||
    typeof m.uid !== "number" ||
    typeof m.name !== "string" ||
    typeof m.text !== "string" ||
    typeof m.ts !== "number"
  ) {
    throw new TypeError(`not a chat message: ${JSON.stringify(value)}`);
  }
  return { channel, id: m.id, uid: m.uid, name: m.name, text: m.text, ts: m.ts };
}

/** A `HISTORY` line's payload: `{"channel", "lines": [...]}`, oldest first. */
export function parseChannelHistory(payload: string): ChannelHistory {
  const body = JSON.parse(payload) as { channel?: unknown; lines?: unknown } | null;
  if (typeof body !== "object" || body === null || !Array.isArray(body.lines)) {
    throw new TypeError(`not a HISTORY payload: ${payload}`);
  }
  const channel = channelOf(body.channel);
  return { channel, lines: body.lines.map((line: unknown) => parseChatMessage(channel, line)) };
}

export class ChatClient {
  private readonly url: string;
  private readonly getNonce: ChatOptions["nonce"];
  private readonly WebSocketClass: WebSocketClass | undefined;
  private readonly reconnectPolicy: ReturnType<typeof reconnectOptions>;
  private readonly pingInterval: number;
  private readonly connectTimeout: number;
  private readonly timeout: number;
  private readonly events = new Emitter<ChatEvents>();
  private socket: SocketLike | null = null;
  private currentState: ChatState = "idle";
  private me: ChatIdentity | null = null;
  private waiters: Waiter[] = [];
  private histories: HistoryWaiter[] = [];
  private attempts = 0;
  private everOpened = false;
  private revoked = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private pinger: ReturnType<typeof setInterval> | undefined;
  private closedWaiters: Array<() => void> = [];

  constructor(options: ChatOptions) {
    this.url = options.url;
    this.getNonce = options.nonce;
    this.WebSocketClass = options.WebSocket;
    this.reconnectPolicy = reconnectOptions(options.reconnect);
    this.pingInterval = options.pingInterval ?? 60_000;
    this.connectTimeout = options.connectTimeout ?? 10_000;
    this.timeout = options.timeout ?? 15_000;
  }

  get state(): ChatState {
    return this.currentState;
  }

  get identity(): ChatIdentity | null {
    return this.me;
  }

  on<K extends keyof ChatEvents>(event: K, listener: (...args: ChatEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  off<K extends keyof ChatEvents>(event: K, listener: (...args: ChatEvents[K]) => void): void {
    this.events.off(event, listener);
  }

  /** Connect and log in; resolves with the player's identity. */
  connect(): Promise<ChatIdentity> {
    if (this.currentState === "closed") {
      return Promise.reject(new ConnectionError(ClientErrorCodes.CLOSED, "the chat client is closed"));
    }
    if (this.currentState === "open" && this.me !== null) {
      return Promise.resolve(this.me);
    }
    const ready = new Promise<ChatIdentity>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.currentState === "idle") {
      void this.attempt();
    }
    return ready;
  }

  /** Say `text` on a channel. Fire-and-forget, as the protocol: a refusal comes back as an `error` event. */
  say(channel: ChatChannel, text: string): void {
    this.send(channel === "public" ? "PUBLIC" : "FAMILY", text);
  }

  /** The last `count` messages of a channel, oldest first (PROTOCOL.md, "Chat history"; without `count`, the
   * server's `chat.history_on_join`, or all it keeps). Resolves with the server's next `HISTORY` line for that
   * channel: right after login that may be its unasked catch-up line (`chat.history_on_join`), which answers as
   * well. Rejects with `ChatError` `bad_request` (`family` outside a family) or `unavailable`, `CallTimeoutError`
   * (no answer within `timeout`), `ConnectionError` (not logged in, or the connection dropped first). */
  history(channel: ChatChannel, count?: number, options: HistoryOptions = {}): Promise<ChannelHistory> {
    if (count !== undefined && !(Number.isInteger(count) && count >= 0)) {
      return Promise.reject(new RangeError(`count must be a whole number >= 0, got ${count}`));
    }
    return new Promise<ChannelHistory>((resolve, reject) => {
      this.send("HISTORY", count === undefined ? channel : `${channel} ${count}`);
      const timeout = options.timeout ?? this.timeout;
      const waiter: HistoryWaiter = {
        channel,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.histories = this.histories.filter((other) => other !== waiter);
          reject(new CallTimeoutError(`chat HISTORY ${channel}`, timeout));
        }, timeout),
      };
      this.histories.push(waiter);
    });
  }

  /** Send any line (a command the server added after this SDK, say). Throws unless logged in. */
  send(command: string, payload = ""): void {
    const socket = this.socket;
    if (this.currentState !== "open" || socket === null || socket.readyState !== OPEN) {
      throw new ConnectionError(ClientErrorCodes.NOT_CONNECTED, `chat: not connected (state ${this.currentState})`);
    }
    socket.send(chatLine(command, payload));
  }

  ping(): void {
    this.send("PING");
  }

  /** Close for good (no reconnect); resolves once the socket is closed. */
  close(): Promise<void> {
    this.stopTimers();
    const socket = this.socket;
    this.setState("closed");
    const error = new ConnectionError(ClientErrorCodes.CLOSED, "the chat client was closed");
    this.rejectWaiters(error);
    this.rejectHistories(error);
    if (socket === null) {
      return Promise.resolve();
    }
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    socket.close(1000, "client closed");
    return closed;
  }

  private async attempt(): Promise<void> {
    this.timer = undefined;
    this.setState(this.everOpened ? "reconnecting" : "connecting");
    let nonce: string;
    try {
      const got = await this.getNonce();
      nonce = typeof got === "string" ? got : got.nonce;
    } catch (error) {
      if (this.currentState === "closed") {
        return;
      }
      const failure =
        error instanceof GameServerError ? error : new ConnectionError(ClientErrorCodes.DISCONNECTED, String(error));
      if (failure.code === "unauthorized") {
        this.giveUp(failure); // no nonce for a revoked or expired token: retrying won't help
      } else {
        this.retry(0, `no nonce: ${failure.message}`);
      }
      return;
    }
    if (this.currentState === "closed") {
      return;
    }
    let socket: SocketLike;
    try {
      socket = openSocket(this.url, this.WebSocketClass);
    } catch (error) {
      this.giveUp(error as Error);
      return;
    }
    this.socket = socket;
    socket.onopen = () => socket.send(chatLine("LOGIN", nonce));
    socket.onmessage = (event) => this.received(socket, event.data);
    socket.onclose = (event) => this.lost(socket, event.code, event.reason);
    socket.onerror = () => undefined;
    this.connectTimer = setTimeout(() => socket.close(), this.connectTimeout);
  }

  private received(socket: SocketLike, data: unknown): void {
    if (socket !== this.socket) {
      return;
    }
    const text = typeof data === "string" ? data : new TextDecoder().decode(data as ArrayBuffer);
    try {
      this.handle(...parseChatLine(text));
    } catch (error) {
      this.events.emit("error", new ChatError(ClientErrorCodes.PROTOCOL, `chat: unreadable line: ${String(error)}`));
    }
  }

  private handle(command: string, payload: string): void {
    switch (command) {
      case "OK":
        this.loggedIn(JSON.parse(payload) as ChatIdentity);
        return;
      case "PUBLIC":
      case "FAMILY": {
        const channel: ChatChannel = command === "PUBLIC" ? "public" : "family";
        const message = parseChatMessage(channel, JSON.parse(payload));
        this.events.emit("message", message);
        this.events.emit(channel, message);
        return;
      }
      case "HISTORY": {
        const history = parseChannelHistory(payload);
        const index = this.histories.findIndex((waiter) => waiter.channel === history.channel);
        if (index < 0) {
          this.events.emit("history", history);
          return;
        }
        const [waiter] = this.histories.splice(index, 1);
        clearTimeout(waiter.timer);
        waiter.resolve(history);
        return;
      }
      case "ERROR": {
        const code = payload.trim();
        if (code === "unauthorized") {
          this.revoked = true; // the server closes next: the player's sessions were revoked
        }
        const error = new ChatError(code, `chat: ${code}`);
        const waiter = HISTORY_ERRORS.has(code) ? this.histories.shift() : undefined;
        if (waiter === undefined) {
          this.events.emit("error", error);
        } else {
          clearTimeout(waiter.timer);
          waiter.reject(error);
        }
        return;
      }
      case "PONG":
        this.events.emit("pong");
        return;
      default:
        this.events.emit("line", command, payload);
    }
  }

  private loggedIn(identity: ChatIdentity): void {
    this.stopConnectTimer();
    this.me = identity;
    this.attempts = 0;
    this.everOpened = true;
    this.setState("open");
    if (this.pingInterval > 0 && this.pinger === undefined) {
      this.pinger = setInterval(() => {
        if (this.currentState === "open") {
          this.ping();
        }
      }, this.pingInterval);
    }
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((waiter) => waiter.resolve(identity));
    this.events.emit("login", identity);
  }

  private lost(socket: SocketLike, code: number, reason: string): void {
    if (socket !== this.socket) {
      return;
    }
    this.socket = null;
    this.stopConnectTimer();
    if (this.pinger !== undefined) {
      clearInterval(this.pinger);
      this.pinger = undefined;
    }
    if (this.currentState === "closed") {
      this.closedWaiters.splice(0).forEach((resolve) => resolve());
      return;
    }
    this.rejectHistories(
      new ConnectionError(ClientErrorCodes.DISCONNECTED, `chat: disconnected (${code} ${reason}) before the answer`),
    );
    this.events.emit("disconnected", { code, reason });
    if (this.revoked) {
      this.giveUp(new ChatError("unauthorized", "chat: the player's sessions were revoked; log in again"));
      return;
    }
    this.retry(code, reason);
  }

  private retry(code: number, reason: string): void {
    const policy = this.reconnectPolicy;
    if (policy === null || this.attempts >= policy.maxAttempts) {
      this.giveUp(new ConnectionError(ClientErrorCodes.DISCONNECTED, `chat: disconnected (${code} ${reason})`));
      return;
    }
    const delay = backoffDelay(this.attempts, policy);
    this.attempts += 1;
    this.setState(this.everOpened ? "reconnecting" : "connecting");
    this.events.emit("reconnecting", { attempt: this.attempts, delay });
    this.timer = setTimeout(() => void this.attempt(), delay);
  }

  private giveUp(error: Error): void {
    this.stopTimers();
    this.setState("idle");
    this.rejectWaiters(error);
  }

  private rejectWaiters(error: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((waiter) => waiter.reject(error));
  }

  private rejectHistories(error: Error): void {
    const waiters = this.histories;
    this.histories = [];
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  private stopConnectTimer(): void {
    if (this.connectTimer !== undefined) {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
    }
  }

  private stopTimers(): void {
    this.stopConnectTimer();
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pinger !== undefined) {
      clearInterval(this.pinger);
      this.pinger = undefined;
    }
  }

  private setState(state: ChatState): void {
    if (state !== this.currentState) {
      this.currentState = state;
      this.events.emit("state", state);
    }
  }
}
