// The runtime's pure parts, and the gate client's behaviour while it has no connection (no server needed).

import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { test } from "node:test";

import { decode, encode } from "@msgpack/msgpack";
import WebSocket from "ws";

import {
  backoffDelay,
  CallTimeoutError,
  chatLine,
  ClientErrorCodes,
  ConnectionError,
  DEFAULT_RECONNECT,
  ErrorCodes,
  GameApi,
  GateClient,
  ItemKind,
  jwtClaims,
  parseChannelHistory,
  parseChatLine,
  parseChatMessage,
} from "../src/index.js";
import { decodeFrame, encodeRequest } from "../src/codec.js";

test("requests encode as msgpack or JSON and frames decode as replies or pushes", () => {
  const request = { id: 7, fn: "sys.echo", args: { a: 1 } };
  assert.equal(encodeRequest(request, "json"), '{"id":7,"fn":"sys.echo","args":{"a":1}}');
  const packed = encodeRequest(request, "msgpack") as Uint8Array;
  assert.deepEqual(decode(packed), request);
  assert.deepEqual(decodeFrame(encode({ id: 7, ok: true, data: { a: 1 } })), {
    kind: "reply",
    id: 7,
    ok: true,
    data: { a: 1 },
  });
  const bytes = encode({ id: 8, ok: true, data: null });
  assert.deepEqual(decodeFrame(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), {
    kind: "reply",
    id: 8,
    ok: true,
    data: null,
  });
  assert.deepEqual(decodeFrame('{"id": 3, "ok": false, "error": {"code": "family_full", "message": "full"}}'), {
    kind: "reply",
    id: 3,
    ok: false,
    error: { code: "family_full", message: "full" },
  });
  assert.deepEqual(decodeFrame('{"event": "mail.new", "data": {"mail_id": "x"}}'), {
    kind: "push",
    event: "mail.new",
    data: { mail_id: "x" },
  });
  assert.throws(() => decodeFrame("[1, 2]"), TypeError);
});

test("backoff grows to its cap with jitter in the upper half", () => {
  assert.equal(
    backoffDelay(0, DEFAULT_RECONNECT, () => 0),
    125,
  );
  assert.equal(
    backoffDelay(0, DEFAULT_RECONNECT, () => 1),
    250,
  );
  assert.equal(
    backoffDelay(3, DEFAULT_RECONNECT, () => 1),
    2000,
  );
  assert.equal(
    backoffDelay(30, DEFAULT_RECONNECT, () => 0.5),
    7500,
  );
});

test("chat lines have a 10-character command field", () => {
  assert.equal(chatLine("LOGIN", "abc"), "LOGIN     abc");
  assert.equal(chatLine("PING"), "PING      ");
  assert.deepEqual(parseChatLine('PUBLIC    {"text": "hi  "}'), ["PUBLIC", '{"text": "hi  "}']);
  assert.throws(() => chatLine("PUBLIC", "two\nlines"), RangeError);
  assert.throws(() => chatLine("TOOLONGCOMMAND"), RangeError);
});

test("chat messages and HISTORY payloads parse into typed lines; malformed ones are refused", () => {
  const line = { id: "1733150000000-a1b2c3-42", uid: 7, name: "Al", text: "hi", ts: 1733150000000 };
  assert.deepEqual(parseChatMessage("public", line), { channel: "public", ...line });
  assert.deepEqual(parseChannelHistory(JSON.stringify({ channel: "family", lines: [line, { ...line, id: "b" }] })), {
    channel: "family",
    lines: [
      { channel: "family", ...line },
      { channel: "family", ...line, id: "b" },
    ],
  });
  assert.deepEqual(parseChannelHistory('{"channel": "public", "lines": []}'), { channel: "public", lines: [] });
  assert.throws(() => parseChatMessage("public", { ...line, id: 5 }), TypeError);
  assert.throws(() => parseChatMessage("public", { uid: 7, name: "Al", text: "hi", ts: 1 }), TypeError);
  assert.throws(() => parseChannelHistory('{"channel": "world", "lines": []}'), TypeError);
  assert.throws(() => parseChannelHistory('{"channel": "public"}'), TypeError);
  assert.throws(() => parseChannelHistory("[]"), TypeError);
});

test("a JWT's claims are read without verifying", () => {
  const payload = Buffer.from(JSON.stringify({ sub: "7", iat: 1000.5, exp: 1100, iss: "gämeserver" })).toString(
    "base64url",
  );
  assert.deepEqual(jwtClaims(`header.${payload}.signature`), { sub: "7", iat: 1000.5, exp: 1100, iss: "gämeserver" });
  assert.deepEqual(jwtClaims("not a token"), {});
});

test("without a connection a call fails at once or waits in the queue until its timeout", async () => {
  const gate = new GateClient({ url: "ws://127.0.0.1:9/gate", whileDisconnected: "fail" });
  await assert.rejects(gate.call("sys.time"), (error: unknown) => {
    assert.ok(error instanceof ConnectionError);
    assert.equal(error.code, ClientErrorCodes.NOT_CONNECTED);
    return true;
  });
  await assert.rejects(gate.call("sys.time", {}, { whileDisconnected: "queue", timeout: 1 }), (error: unknown) => {
    assert.ok(error instanceof CallTimeoutError);
    assert.equal(error.code, ErrorCodes.TIMEOUT);
    return true;
  });
  await gate.close();
  await assert.rejects(
    gate.call("sys.time"),
    (error: unknown) => error instanceof ConnectionError && error.code === "closed",
  );
});

test("the typed layer calls the generic call with the function's name and arguments", async () => {
  const calls: unknown[][] = [];
  const api = new GameApi({
    call<T>(fn: string, args?: Record<string, unknown>): Promise<T> {
      calls.push([fn, args]);
      return Promise.resolve({ items: [{ item: ItemKind.COIN, name: "COIN", count: 3 }] } as T);
    },
  });
  const inventory = await api.inventory.get();
  assert.equal(inventory.items[0]?.count, 3);
  await api.family.create({ name: "Otters" });
  await api.leaderboard.top({ board: "global" });
  assert.deepEqual(calls, [
    ["inventory.get", {}],
    ["family.create", { name: "Otters" }],
    ["leaderboard.top", { board: "global" }],
  ]);
});

test("an attempt that never opens is given up after connectTimeout, then retried up to maxAttempts", async () => {
  const accepted: net.Socket[] = [];
  const silent = net.createServer((socket) => accepted.push(socket)); // accepts, never answers the upgrade
  silent.listen(0, "127.0.0.1");
  await once(silent, "listening");
  const port = (silent.address() as net.AddressInfo).port;
  const gate = new GateClient({
    url: `ws://127.0.0.1:${port}/gate`,
    WebSocket,
    connectTimeout: 20,
    reconnect: { initialDelay: 1, maxAttempts: 2 },
  });
  const attempts: number[] = [];
  gate.on("reconnecting", ({ attempt }) => attempts.push(attempt));
  try {
    await assert.rejects(
      gate.connect(),
      (error: unknown) => error instanceof ConnectionError && error.code === "disconnected",
    );
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(gate.state, "idle");
  } finally {
    await gate.close();
    accepted.forEach((socket) => socket.destroy());
    await new Promise((resolve) => silent.close(resolve));
  }
});
