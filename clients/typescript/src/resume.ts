/**
 * Resume bookkeeping (the resume protocol: docs/PROTOCOL.md, "Resume"): the session's resume token, the highest
 * `seq` received, and when to send `session.ack`. Pure: the caller passes the clock and does the I/O.
 */

/** What a login, register, bind or resume reply's `data.resume` holds. */
export interface ResumeGrant {
  /** Sent back in `session.resume`; a resume may hand out a new one (the latest counts). */
  token: string;
  /** Seconds the server keeps the session after the connection drops. */
  grace: number;
  /** Messages the server keeps unacknowledged for the session. */
  buffer: number;
}

/** Why the server refused a resume: the first word of its `resume_failed` message. */
export type ResumeFailure = "expired" | "overflow" | "replaced" | "closed" | "lost" | "invalid" | "banned" | "revoked";

/** The functions that bind a connection to a player and so take `"resume": true`. */
export const RESUME_FUNCTIONS: ReadonlySet<string> = new Set(["auth.login", "auth.register", "session.bind"]);

/** At most one `session.ack` per this many ms. */
export const ACK_INTERVAL = 1000;

/** `reply.data.resume` when it has the shape of a grant, else null. */
export function grantOf(data: unknown): ResumeGrant | null {
  const resume = (data as { resume?: unknown } | null)?.resume as Partial<ResumeGrant> | undefined;
  if (
    typeof resume !== "object" ||
    resume === null ||
    typeof resume.token !== "string" ||
    typeof resume.grace !== "number" ||
    typeof resume.buffer !== "number"
  ) {
    return null;
  }
  return { token: resume.token, grace: resume.grace, buffer: resume.buffer };
}

/** The reason word of a `resume_failed` error's message (`"expired: the grace period ended"` -> `expired`). */
export function resumeFailure(message: string): string {
  return message.split(":", 1)[0].trim();
}

export class ResumeState {
  private current: ResumeGrant | null = null;
  /** The highest `seq` received in this session (0: none yet). */
  received = 0;
  private acked = 0;
  private ackedAt = Number.NEGATIVE_INFINITY;

  /** The grant of the session, or null when the session is not resumable. */
  get grant(): ResumeGrant | null {
    return this.current;
  }

  /** A login, register or bind made the session resumable: a new session, numbered from `seq` (the reply's
   * own, or 0 when it carries none). */
  start(grant: ResumeGrant, seq: number | undefined): void {
    this.current = grant;
    this.received = seq ?? 0;
    this.acked = this.received;
    this.ackedAt = Number.NEGATIVE_INFINITY;
  }

  /** A resume succeeded: the same session (numbering goes on), maybe with a new token. */
  renew(grant: ResumeGrant): void {
    this.current = grant;
  }

  /** The session is gone (logged out, unbound, a failed resume, a login without resume). */
  forget(): void {
    this.current = null;
    this.received = 0;
    this.acked = 0;
  }

  /** A message arrived with `seq` (or none): whether to deliver it. One with a seq already received is a
   * duplicate and is not delivered again; one without is older than the numbering and always delivered. */
  accept(seq: number | undefined): boolean {
    if (seq === undefined) {
      return true;
    }
    if (seq <= this.received) {
      return false;
    }
    this.received = seq;
    return true;
  }

  /** When to send `session.ack`: null when none is due (not resumable, or `received` has grown by less than a
   * quarter of the buffer since the last ack), 0 now, or in that many ms (the last ack was under a second ago). */
  ackDelay(now: number): number | null {
    if (this.current === null || this.received - this.acked < Math.max(1, this.current.buffer / 4)) {
      return null;
    }
    return Math.max(0, this.ackedAt + ACK_INTERVAL - now);
  }

  /** `session.ack {received}` goes out now: returns the `received` to send. */
  ack(now: number): number {
    this.acked = this.received;
    this.ackedAt = now;
    return this.received;
  }
}
