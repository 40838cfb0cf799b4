/** Gate frames (PROTOCOL.md, "Gate: request / response"): msgpack in binary frames, JSON in text frames. */

import { decode, encode } from "@msgpack/msgpack";

export type Encoding = "msgpack" | "json";

export interface Request {
  id: number;
  fn: string;
  args: Record<string, unknown>;
  token?: string;
}

export interface ErrorBody {
  code: string;
  message: string;
}

/** `seq` numbers the messages of a resumable session (PROTOCOL.md, "Resume"); absent otherwise. */
export type Reply =
  | { kind: "reply"; id: number | null; ok: true; data: unknown; seq?: number }
  | { kind: "reply"; id: number | null; ok: false; error: ErrorBody; seq?: number };

export interface Push {
  kind: "push";
  event: string;
  data: unknown;
  seq?: number;
}

export function encodeRequest(request: Request, encoding: Encoding): string | Uint8Array {
  return encoding === "json" ? JSON.stringify(request) : encode(request);
}

/** A frame's payload (`string` for a text frame, bytes for a binary one) as a reply or a push. */
export function decodeFrame(data: unknown): Reply | Push {
  let value: unknown;
  if (typeof data === "string") {
    value = JSON.parse(data);
  } else if (data instanceof ArrayBuffer) {
    value = decode(new Uint8Array(data));
  } else if (ArrayBuffer.isView(data)) {
    value = decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } else {
    throw new TypeError("a frame is text or bytes");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError("a frame holds one map");
  }
  const map = value as Record<string, unknown>;
  const seq = typeof map.seq === "number" ? { seq: map.seq } : {};
  if (!("id" in map) && typeof map.event === "string") {
    return { kind: "push", event: map.event, data: map.data, ...seq };
  }
  const id = typeof map.id === "number" ? map.id : null;
  if (map.ok === true) {
    return { kind: "reply", id, ok: true, data: map.data, ...seq };
  }
  const error = (map.error ?? {}) as Partial<ErrorBody>;
  return {
    kind: "reply",
    id,
    ok: false,
    error: { code: String(error.code ?? "protocol"), message: String(error.message ?? "") },
    ...seq,
  };
}
