/**
 * Errors as typed exceptions. Every one carries `code`: the server's error code (`bad_request`,
 * `family_full`, ... see `ErrorCodes`) or one of the client-side codes below.
 *
 *   GameServerError            base: `code`, `message`
 *   ├── CallError              the server answered a call with `ok: false` (`fn`, `code` from the server)
 *   ├── CallTimeoutError       no reply within the call's timeout (code `timeout`, as the server's own)
 *   ├── ConnectionError        the call could not be made or its connection was lost (code `disconnected`,
 *   │                          `closed` or `not_connected`)
 *   ├── HttpError              an `/auth/*` route answered an error (`status`, `code` from its body)
 *   └── ChatError              an `ERROR <code>` line of the chat edge, or a chat login that failed
 */

export const ClientErrorCodes = {
  /** The connection dropped after the request was sent (and the session was not resumed): it may or may not have
   * run on the server. */
  DISCONNECTED: "disconnected",
  /** The client was closed by `close()`. */
  CLOSED: "closed",
  /** The client is not connected and the call asked not to be queued (`whileDisconnected: "fail"`). */
  NOT_CONNECTED: "not_connected",
  /** A reply or response the client cannot read. */
  PROTOCOL: "protocol",
} as const;

export class GameServerError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

export class CallError extends GameServerError {
  readonly fn: string;
  /** The server's own message (`message` also names `fn` and `code`). */
  readonly detail: string;

  constructor(fn: string, code: string, message: string) {
    super(code, `${fn}: ${code}: ${message}`);
    this.fn = fn;
    this.detail = message;
  }
}

export class CallTimeoutError extends GameServerError {
  readonly fn: string;
  readonly timeout: number;

  constructor(fn: string, timeout: number) {
    super("timeout", `${fn}: no reply within ${timeout} ms`);
    this.fn = fn;
    this.timeout = timeout;
  }
}

export class ConnectionError extends GameServerError {}

export class HttpError extends GameServerError {
  readonly status: number;

  constructor(status: number, code: string, message: string) {
    super(code, `HTTP ${status} ${code}: ${message}`);
    this.status = status;
  }
}

export class ChatError extends GameServerError {}

/** Whether `error` is a gameserver error with this `code` (e.g. `isError(e, ErrorCodes.FAMILY_FULL)`). */
export function isError(error: unknown, code: string): error is GameServerError {
  return error instanceof GameServerError && error.code === code;
}
