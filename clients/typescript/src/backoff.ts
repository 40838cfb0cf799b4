/** Reconnect delays: exponential, capped, with "equal jitter" so that clients dropped together spread out. */

export interface ReconnectOptions {
  /** Delay before the first attempt, in ms (default 250). */
  initialDelay?: number;
  /** Largest delay, in ms (default 10000). */
  maxDelay?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Give up when this many reconnect attempts in a row have failed (default: never). */
  maxAttempts?: number;
}

export const DEFAULT_RECONNECT: Required<ReconnectOptions> = {
  initialDelay: 250,
  maxDelay: 10_000,
  factor: 2,
  maxAttempts: Number.POSITIVE_INFINITY,
};

/** The delay before attempt `attempt` (0 first): half the capped exponential, plus up to as much at random. */
export function backoffDelay(
  attempt: number,
  options: Required<ReconnectOptions> = DEFAULT_RECONNECT,
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.maxDelay, options.initialDelay * options.factor ** attempt);
  return cap / 2 + random() * (cap / 2);
}

export function reconnectOptions(value: boolean | ReconnectOptions | undefined): Required<ReconnectOptions> | null {
  if (value === false) {
    return null;
  }
  return { ...DEFAULT_RECONNECT, ...(value === true || value === undefined ? {} : value) };
}
