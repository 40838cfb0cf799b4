/**
 * The gate over WebSocket (PROTOCOL.md, "Gate: request / response"): calls matched to replies by id, each with
 * its own timeout; server pushes as events; `session.bind` on every (re)connect while a token is known; automatic
 * reconnect with backoff and jitter; calls made while disconnected queued or failed, as the caller chooses.
 * Logins and binds ask for a resumable session (PROTOCOL.md, "Resume"): after a drop the next connection first
 * tries `session.resume`, and calls in flight get their replies there instead of failing.
 */

import { backoffDelay, reconnectOptions, type ReconnectOptions } from "./backoff.js";
import { decodeFrame, encodeRequest, type Encoding, type Request } from "./codec.js";
import { Emitter } from "./emitter.js";
import { CallError, CallTimeoutError, ClientErrorCodes, ConnectionError, GameServerError } from "./errors.js";
import { grantOf, RESUME_FUNCTIONS, resumeFailure, ResumeState } from "./resume.js";
import { OPEN, openSocket, type SocketLike, type WebSocketClass } from "./socket.js";

/** What to do with a call made while the connection is down: wait for the reconnect, or fail at once. */
export type WhileDisconnected = "queue" | "fail";

export interface CallOptions {
  /** Milliseconds to wait for the reply, counted from the call (queued time included). */
  timeout?: number;
  /** Overrides the client's `whileDisconnected` for this call. */
  whileDisconnected?: WhileDisconnected;
  /** Send this token with the request instead of relying on the connection's binding. */
  token?: string;
}

/** The one method the generated typed layer needs: a generic call by function name. */
export interface Caller {
  call<T = any>(fn: string, args?: Record<string, unknown>, options?: CallOptions): Promise<T>;
}

/** Where the gate client reads the player's token before each `session.bind` (e.g. an `Auth`). */
export interface TokenSource {
  readonly token: string | null;
}

export interface GateOptions {
  /** `ws://host:8881/gate` (or `wss://` behind a TLS proxy). */
  url: string;
  /** `msgpack` (binary frames, the default) or `json` (text frames). */
  encoding?: Encoding;
  /** Default per-call timeout in ms (15000: the server's own deadline is 10 s by default). */
  timeout?: number;
  /** Default for calls made while disconnected (`queue`). */
  whileDisconnected?: WhileDisconnected;
  /** Give up an attempt that has not opened (and bound) within this many ms, and try again (10000). */
  connectTimeout?: number;
  /** Reconnect after a drop (default true: 250 ms doubling to 10 s, with jitter, forever). */
  reconnect?: boolean | ReconnectOptions;
  /** The token to bind each new connection with. Without it the client keeps the token of its last
   * successful `auth.login`, `auth.register`, `auth.refresh` or `session.bind` call. */
  auth?: TokenSource;
  /** The WebSocket class; default the global one (browsers, Cocos Creator). On Node pass `ws`'s. */
  WebSocket?: WebSocketClass;
  /** Ask for a resumable session on every login, register and bind (default true): a dropped connection is then
   * resumed, replies and pushes sent meanwhile delivered once. A server without resume is detected (it refuses
   * the argument) and then not asked again. */
  resume?: boolean;
}

export type GateState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface GateEvents {
  state: [GateState];
  /** The connection is open (and bound or resumed, when a session is known); queued calls go out now. */
  connected: [{ reconnected: boolean; uid: number | null; resumed: boolean }];
  /** The connection dropped (or an attempt failed); calls in flight failed with `disconnected`, unless the session
   * is resumable: then they wait for the resume. */
  disconnected: [{ code: number; reason: string }];
  /** The session survived the drop: `replayed` messages kept for it follow (each delivered once), and calls in
   * flight get their replies. Fired just before `connected`. */
  resumed: [{ uid: number; replayed: number }];
  /** The session could not be resumed: `reason` is `expired`, `overflow`, `replaced`, `closed`, `lost`, `invalid`,
   * `banned` or `revoked` (PROTOCOL.md, "Resume"). Calls in flight failed with `disconnected`; the client binds
   * with its token next, as after any reconnect. */
  resumeFailed: [{ reason: string; message: string }];
  /** A reconnect attempt is scheduled after `delay` ms. */
  reconnecting: [{ attempt: number; delay: number }];
  /** Every server push, whatever its name. */
  push: [string, unknown];
  /** Something went wrong outside any call: a re-bind refused, an unreadable frame. */
  error: [GameServerError];
}

interface Pending {
  id: number;
  fn: string;
  args: Record<string, unknown>;
  token: string | undefined;
  timeout: number;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The client's own request (bind, resume, ack): never kept for a resume. */
  internal?: boolean;
  /** `resume: true` was added by the client: taken out again if the server does not know the argument. */
  addedResume?: boolean;
}

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

const TOKEN_FUNCTIONS = new Set(["auth.login", "auth.register", "auth.refresh"]);
const NORMAL_CLOSE = 1000;

export class GateClient implements Caller {
  private readonly url: string;
  private readonly encoding: Encoding;
  private readonly defaultTimeout: number;
  private readonly whileDisconnected: WhileDisconnected;
  private readonly connectTimeout: number;
  private readonly reconnectPolicy: ReturnType<typeof reconnectOptions>;
  private readonly tokenSource: TokenSource | undefined;
  private readonly WebSocketClass: WebSocketClass | undefined;
  private readonly events = new Emitter<GateEvents>();
  private readonly pushes = new Map<string, Set<(data: unknown) => void>>();
  private readonly inflight = new Map<number, Pending>();
  private queue: Pending[] = [];
  private waiters: Waiter[] = [];
  private socket: SocketLike | null = null;
  private currentState: GateState = "idle";
  private nextId = 0;
  private attempts = 0;
  private everOpened = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private closedWaiters: Array<() => void> = [];
  private ownToken: string | null = null;
  private boundUid: number | null = null;
  private readonly resume = new ResumeState();
  private resumeWanted: boolean;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: GateOptions) {
    this.url = options.url;
    this.encoding = options.encoding ?? "msgpack";
    this.defaultTimeout = options.timeout ?? 15_000;
    this.whileDisconnected = options.whileDisconnected ?? "queue";
    this.connectTimeout = options.connectTimeout ?? 10_000;
    this.reconnectPolicy = reconnectOptions(options.reconnect);
    this.tokenSource = options.auth;
    this.WebSocketClass = options.WebSocket;
    this.resumeWanted = options.resume ?? true;
  }

  get state(): GateState {
    return this.currentState;
  }

  /** The token each new connection is bound with, if any. */
  get token(): string | null {
    return this.tokenSource !== undefined ? this.tokenSource.token : this.ownToken;
  }

  /** The player this connection is bound to (from the last `session.bind`, login or register), if any. */
  get uid(): number | null {
    return this.boundUid;
  }

  /** Whether the session survives a dropped connection (the server granted resume to the last login or bind). */
  get resumable(): boolean {
    return this.resume.grant !== null;
  }

  /** Set (or forget, with null) the token to bind with; used when no `auth` option is given. */
  setToken(token: string | null): void {
    this.ownToken = token;
  }

  /** Open the connection; resolves once it is open and bound. With reconnect on, failed attempts are retried
   * (with backoff) until one succeeds, `maxAttempts` is reached or `close()` is called. */
  connect(): Promise<void> {
    if (this.currentState === "closed") {
      return Promise.reject(new ConnectionError(ClientErrorCodes.CLOSED, "the client is closed"));
    }
    if (this.currentState === "open") {
      return Promise.resolve();
    }
    const ready = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.currentState === "idle") {
      this.attempt();
    }
    return ready;
  }

  /** Call `fn` with `args`; resolves with the reply's `data`, rejects with a `CallError` carrying the server's
   * error code, a `CallTimeoutError`, or a `ConnectionError`. */
  call<T = any>(fn: string, args: Record<string, unknown> = {}, options: CallOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.currentState === "closed") {
        reject(new ConnectionError(ClientErrorCodes.CLOSED, `${fn}: the client is closed`));
        return;
      }
      const timeout = options.timeout ?? this.defaultTimeout;
      const addedResume = this.resumeWanted && RESUME_FUNCTIONS.has(fn) && !("resume" in args);
      const pending: Pending = {
        id: 0,
        fn,
        args: addedResume ? { ...args, resume: true } : args,
        token: options.token,
        timeout,
        resolve: resolve as (value: unknown) => void,
        reject,
        timer: undefined,
        addedResume,
      };
      if (this.currentState === "open" && this.socket !== null) {
        pending.timer = setTimeout(() => this.timedOut(pending), timeout);
        this.transmit(this.socket, pending);
        return;
      }
      if ((options.whileDisconnected ?? this.whileDisconnected) === "fail") {
        reject(
          new ConnectionError(ClientErrorCodes.NOT_CONNECTED, `${fn}: not connected (state ${this.currentState})`),
        );
        return;
      }
      pending.timer = setTimeout(() => this.timedOut(pending), timeout);
      this.queue.push(pending);
    });
  }

  /** Listen to the server push `event` (e.g. `mail.new`); returns the function that stops listening. */
  onPush<T = any>(event: string, listener: (data: T) => void): () => void {
    let set = this.pushes.get(event);
    if (set === undefined) {
      set = new Set();
      this.pushes.set(event, set);
    }
    const wrapped = listener as (data: unknown) => void;
    set.add(wrapped);
    return () => {
      set.delete(wrapped);
    };
  }

  /** Listen to the client's own events (`connected`, `disconnected`, `reconnecting`, `state`, `push`, `error`). */
  on<K extends keyof GateEvents>(event: K, listener: (...args: GateEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  off<K extends keyof GateEvents>(event: K, listener: (...args: GateEvents[K]) => void): void {
    this.events.off(event, listener);
  }

  /** Close for good: no reconnect; queued and in-flight calls fail with `closed`. Resolves once the socket is
   * closed. */
  close(): Promise<void> {
    if (this.reconnectTimer !== undefined) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
    }
    this.stopAckTimer();
    this.resume.forget();
    const socket = this.socket;
    this.setState("closed");
    const error = new ConnectionError(ClientErrorCodes.CLOSED, "the client was closed");
    this.failAll(error);
    this.rejectWaiters(error);
    if (socket === null) {
      return Promise.resolve();
    }
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    socket.close(NORMAL_CLOSE, "client closed");
    return closed;
  }

  private attempt(): void {
    this.reconnectTimer = undefined;
    this.setState(this.everOpened ? "reconnecting" : "connecting");
    let socket: SocketLike;
    try {
      socket = openSocket(this.url, this.WebSocketClass);
    } catch (error) {
      this.setState("idle");
      this.failAll(error as Error);
      this.rejectWaiters(error as Error);
      return;
    }
    this.socket = socket;
    socket.onopen = () => void this.opened(socket);
    socket.onmessage = (event) => this.received(socket, event.data);
    socket.onclose = (event) => this.lost(socket, event.code, event.reason);
    socket.onerror = () => undefined; // a close event follows, with the code
    // A network that swallows packets leaves a socket connecting for minutes: give up sooner and retry.
    this.connectTimer = setTimeout(() => socket.close(), this.connectTimeout);
  }

  private async opened(socket: SocketLike): Promise<void> {
    let uid: number | null = null;
    let resumed: { uid: number; replayed: number } | null = null;
    const grant = this.resume.grant;
    if (grant !== null) {
      // The first request on the new connection (PROTOCOL.md, "Resume").
      try {
        const reply = (await this.direct(socket, "session.resume", {
          token: grant.token,
          received: this.resume.received,
        })) as { uid: number; replayed?: number };
        this.resume.renew(grantOf(reply) ?? grant);
        uid = reply.uid;
        resumed = { uid: reply.uid, replayed: reply.replayed ?? 0 };
      } catch (error) {
        if (!(error instanceof CallError)) {
          return; // dropped (or timed out) again: lost() retries, the calls in flight still wait
        }
        const reason = error.code === "resume_failed" ? resumeFailure(error.detail) : error.code;
        this.resume.forget();
        this.dropInflight(false, `the session could not be resumed (${reason})`);
        this.events.emit("resumeFailed", { reason, message: error.detail });
      }
    }
    const token = this.token;
    if (resumed === null && token !== null) {
      try {
        const bound = (await this.direct(socket, "session.bind", { token })) as { uid: number };
        uid = bound.uid;
      } catch (error) {
        if (!(error instanceof CallError)) {
          return; // the connection dropped during the bind (lost() reconnects), or the bind timed out (as the attempt)
        }
        if (error.code === "unauthorized" && this.tokenSource === undefined) {
          this.ownToken = null; // expired or revoked: binding with it again would fail again
        }
        this.events.emit("error", error); // carry on unbound: calls that need a login answer unauthorized
      }
    }
    if (socket !== this.socket || this.currentState === "closed") {
      return;
    }
    this.stopConnectTimer();
    const reconnected = this.everOpened;
    this.attempts = 0;
    this.everOpened = true;
    this.boundUid = uid;
    this.setState("open");
    const queued = this.queue;
    this.queue = [];
    for (const pending of queued) {
      this.transmit(socket, pending);
    }
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((waiter) => waiter.resolve());
    if (resumed !== null) {
      this.events.emit("resumed", resumed);
    }
    this.events.emit("connected", { reconnected, uid, resumed: resumed !== null });
    this.scheduleAck();
  }

  /** A request of the client's own straight on `socket`, ahead of the queue (the re-bind, a resume, an ack). */
  private direct(socket: SocketLike, fn: string, args: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timeout = this.connectTimeout; // no timer of its own: the attempt's connectTimeout covers it
      const addedResume = this.resumeWanted && RESUME_FUNCTIONS.has(fn);
      this.transmit(socket, {
        id: 0,
        fn,
        args: addedResume ? { ...args, resume: true } : args,
        token: undefined,
        timeout,
        resolve,
        reject,
        timer: undefined,
        internal: true,
        addedResume,
      });
    });
  }

  private transmit(socket: SocketLike, pending: Pending): void {
    this.nextId = (this.nextId % 0x7fffffff) + 1;
    pending.id = this.nextId;
    const request: Request = { id: pending.id, fn: pending.fn, args: pending.args };
    if (pending.token !== undefined) {
      request.token = pending.token;
    }
    let frame: string | Uint8Array;
    try {
      frame = encodeRequest(request, this.encoding);
    } catch (error) {
      this.settle(pending);
      pending.reject(error as Error);
      return;
    }
    this.inflight.set(pending.id, pending);
    if (socket.readyState === OPEN) {
      socket.send(frame);
    } // else: the close event is on its way and fails it as `disconnected`
  }

  private received(socket: SocketLike, data: unknown): void {
    if (socket !== this.socket) {
      return;
    }
    let message: ReturnType<typeof decodeFrame>;
    try {
      message = decodeFrame(data);
    } catch (error) {
      this.events.emit("error", new GameServerError(ClientErrorCodes.PROTOCOL, `unreadable frame: ${String(error)}`));
      return;
    }
    const pending = message.kind === "reply" && message.id !== null ? this.inflight.get(message.id) : undefined;
    const grant =
      pending !== undefined && message.kind === "reply" && message.ok && RESUME_FUNCTIONS.has(pending.fn)
        ? grantOf(message.data)
        : null;
    if (grant !== null) {
      this.resume.start(grant, message.seq); // a new resumable session, numbered from this reply
    } else if (!this.resume.accept(message.seq)) {
      return; // sent before, and received before: a resume never delivers a message twice
    }
    this.scheduleAck();
    if (message.kind === "push") {
      this.events.emit("push", message.event, message.data);
      for (const listener of [...(this.pushes.get(message.event) ?? [])]) {
        try {
          listener(message.data);
        } catch (error) {
          setTimeout(() => {
            throw error;
          }, 0);
        }
      }
      return;
    }
    if (pending === undefined) {
      return; // the reply to a call that timed out already
    }
    if (!message.ok && pending.addedResume && message.error.code === "bad_request") {
      if (/\bresume\b/.test(message.error.message)) {
        this.withoutResume(socket, pending); // a server older than resume: ask it without
        return;
      }
    }
    this.settle(pending);
    if (message.ok) {
      this.remember(pending, message.data);
      pending.resolve(message.data);
    } else {
      pending.reject(new CallError(pending.fn, message.error.code, message.error.message));
    }
  }

  /** `pending` again without the `resume` argument the server refused; it keeps its timer. */
  private withoutResume(socket: SocketLike, pending: Pending): void {
    this.resumeWanted = false;
    this.inflight.delete(pending.id);
    const { resume: _, ...args } = pending.args;
    pending.args = args;
    pending.addedResume = false;
    this.transmit(socket, pending);
  }

  /** Keep the token of a gate login, register, refresh or bind, to bind the next connection with. */
  private remember(pending: Pending, data: unknown): void {
    if ((RESUME_FUNCTIONS.has(pending.fn) && grantOf(data) === null) || pending.fn === "auth.logout") {
      this.resume.forget(); // a new session that is not resumable, or none
    }
    const reply = (data ?? {}) as { token?: unknown; uid?: unknown };
    if (TOKEN_FUNCTIONS.has(pending.fn) && typeof reply.token === "string") {
      this.ownToken = reply.token;
    } else if (pending.fn === "session.bind" && typeof pending.args.token === "string") {
      this.ownToken = pending.args.token;
    } else if (pending.fn === "auth.logout") {
      this.ownToken = null;
      this.boundUid = null;
      return;
    }
    if ((TOKEN_FUNCTIONS.has(pending.fn) || pending.fn === "session.bind") && typeof reply.uid === "number") {
      this.boundUid = reply.uid;
    }
  }

  private lost(socket: SocketLike, code: number, reason: string): void {
    if (socket !== this.socket) {
      return;
    }
    this.socket = null;
    this.stopConnectTimer();
    this.stopAckTimer();
    const policy = this.reconnectPolicy;
    const retry = this.currentState !== "closed" && policy !== null && this.attempts < policy.maxAttempts;
    // A resumable session keeps the replies of the calls in flight for the next connection.
    this.dropInflight(retry && this.resume.grant !== null, `the connection dropped (code ${code})`);
    if (this.currentState === "closed") {
      this.closedWaiters.splice(0).forEach((resolve) => resolve());
      return;
    }
    if (policy === null || !retry) {
      this.setState("idle");
      this.events.emit("disconnected", { code, reason });
      const error = new ConnectionError(ClientErrorCodes.DISCONNECTED, `the connection dropped (code ${code})`);
      this.failAll(error);
      this.rejectWaiters(error);
      return;
    }
    const delay = backoffDelay(this.attempts, policy);
    this.attempts += 1;
    this.setState(this.everOpened ? "reconnecting" : "connecting");
    this.events.emit("disconnected", { code, reason });
    this.events.emit("reconnecting", { attempt: this.attempts, delay });
    this.reconnectTimer = setTimeout(() => this.attempt(), delay);
  }

  /** Fail the calls in flight with `disconnected`, except, when `keep`, those whose replies a resume brings. */
  private dropInflight(keep: boolean, why: string): void {
    for (const pending of [...this.inflight.values()]) {
      if (keep && pending.internal !== true) {
        continue;
      }
      this.settle(pending);
      pending.reject(new ConnectionError(ClientErrorCodes.DISCONNECTED, `${pending.fn}: ${why}; it may have run`));
    }
  }

  /** Send `session.ack` once `received` has grown by a quarter of the server's buffer, at most once a second. */
  private scheduleAck(): void {
    if (this.ackTimer !== undefined || this.currentState !== "open") {
      return;
    }
    const delay = this.resume.ackDelay(Date.now());
    if (delay === null) {
      return;
    }
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      const socket = this.socket;
      if (socket !== null && this.currentState === "open" && this.resume.ackDelay(Date.now()) !== null) {
        const received = this.resume.ack(Date.now());
        this.direct(socket, "session.ack", { received }).catch(() => undefined); // the next ack covers a lost one
      }
    }, delay);
  }

  private stopAckTimer(): void {
    if (this.ackTimer !== undefined) {
      clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
    }
  }

  private stopConnectTimer(): void {
    if (this.connectTimer !== undefined) {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
    }
  }

  private timedOut(pending: Pending): void {
    pending.timer = undefined;
    this.inflight.delete(pending.id);
    this.queue = this.queue.filter((queued) => queued !== pending);
    pending.reject(new CallTimeoutError(pending.fn, pending.timeout));
  }

  private settle(pending: Pending): void {
    if (pending.timer !== undefined) {
      clearTimeout(pending.timer);
      pending.timer = undefined;
    }
    this.inflight.delete(pending.id);
  }

  private failAll(error: Error): void {
    const all = [...this.queue, ...this.inflight.values()];
    this.queue = [];
    this.inflight.clear();
    for (const pending of all) {
      this.settle(pending);
      pending.reject(error);
    }
  }

  private rejectWaiters(error: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((waiter) => waiter.reject(error));
  }

  private setState(state: GateState): void {
    if (state !== this.currentState) {
      this.currentState = state;
      this.events.emit("state", state);
    }
  }
}
