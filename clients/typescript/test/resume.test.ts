// Resume on the client (PROTOCOL.md, "Resume"): the seq/ack bookkeeping, and the gate client against a scripted
// peer that speaks the resume protocol (the live suite runs it against a real server when the server has resume).

import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";

import WebSocket, { WebSocketServer } from "ws";

import { ClientErrorCodes, ConnectionError, GateClient } from "../src/index.js";
import { decodeFrame } from "../src/codec.js";
import { ACK_INTERVAL, grantOf, resumeFailure, ResumeState } from "../src/resume.js";

const GRANT = { token: "r1", grace: 30, buffer: 8 };

test("a frame's seq is read from replies and pushes", () => {
  assert.deepEqual(decodeFrame('{"id": 1, "ok": true, "data": {}, "seq": 4}'), {
    kind: "reply",
    id: 1,
    ok: true,
    data: {},
    seq: 4,
  });
  assert.deepEqual(decodeFrame('{"event": "mail.new", "data": 1, "seq": 5}'), {
    kind: "push",
    event: "mail.new",
    data: 1,
    seq: 5,
  });
  assert.equal("seq" in decodeFrame('{"id": 1, "ok": true, "data": {}}'), false);
});

test("a grant is read from a reply's data; a resume_failed message names its reason", () => {
  assert.deepEqual(grantOf({ uid: 1, token: "jwt", resume: GRANT }), GRANT);
  assert.equal(grantOf({ uid: 1, token: "jwt" }), null);
  assert.equal(grantOf({ resume: { token: "r1", grace: 30 } }), null);
  assert.equal(grantOf(null), null);
  assert.equal(resumeFailure("expired: the grace period ended"), "expired");
  assert.equal(resumeFailure("overflow"), "overflow");
});

test("seq: each message is delivered once, those without a seq always", () => {
  const state = new ResumeState();
  state.start(GRANT, 1);
  assert.equal(state.received, 1);
  assert.deepEqual(
    [2, 3, 3, 2, undefined, 4].map((seq) => state.accept(seq)),
    [true, true, false, false, true, true],
  );
  assert.equal(state.received, 4);
  state.renew({ ...GRANT, token: "r2" }); // a resume: the numbering goes on
  assert.equal(state.grant?.token, "r2");
  assert.equal(state.accept(4), false);
  state.start(GRANT, 1); // a new login: a new session, numbered again
  assert.equal(state.accept(2), true);
  state.forget();
  assert.equal(state.grant, null);
});

test("ack: due once received grew by a quarter of the buffer, at most once a second", () => {
  const state = new ResumeState();
  assert.equal(state.ackDelay(0), null); // not resumable
  state.start(GRANT, 1); // buffer 8: an ack per 2 messages
  state.accept(2);
  assert.equal(state.ackDelay(0), null);
  state.accept(3);
  assert.equal(state.ackDelay(0), 0);
  assert.equal(state.ack(5000), 3);
  assert.equal(state.ackDelay(5000), null);
  state.accept(4);
  state.accept(5);
  assert.equal(state.ackDelay(5200), ACK_INTERVAL - 200); // grown enough, but the last ack was 200 ms ago
  assert.equal(state.ackDelay(5000 + ACK_INTERVAL), 0);
  state.start({ ...GRANT, buffer: 2 }, 1);
  state.accept(2);
  assert.equal(state.ackDelay(0), 0); // a tiny buffer: every message
});

interface Frame {
  id: number;
  fn: string;
  args: Record<string, unknown>;
}

/** A scripted gate: each connection's requests come out of `next()`; the test answers with `send`. */
class Peer {
  readonly server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  private frames: Array<{ ws: WebSocket; frame: Frame }> = [];
  private wanted: Array<(item: { ws: WebSocket; frame: Frame }) => void> = [];
  connections = 0;

  constructor() {
    this.server.on("connection", (ws) => {
      this.connections += 1;
      ws.on("message", (data) => {
        const item = { ws, frame: JSON.parse(String(data)) as Frame };
        const waiter = this.wanted.shift();
        if (waiter === undefined) {
          this.frames.push(item);
        } else {
          waiter(item);
        }
      });
    });
  }

  async url(): Promise<string> {
    await once(this.server, "listening");
    return `ws://127.0.0.1:${(this.server.address() as { port: number }).port}/gate`;
  }

  /** The next request, on whichever connection; asserts its fn. */
  async next(fn: string): Promise<{ ws: WebSocket; frame: Frame }> {
    const item =
      this.frames.shift() ?? (await new Promise<{ ws: WebSocket; frame: Frame }>((r) => this.wanted.push(r)));
    assert.equal(item.frame.fn, fn, `expected ${fn}, got ${JSON.stringify(item.frame)}`);
    return item;
  }

  close(): Promise<void> {
    this.server.clients.forEach((ws) => ws.terminate());
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function send(ws: WebSocket, message: Record<string, unknown>): void {
  ws.send(JSON.stringify(message));
}

test("a dropped resumable session is resumed: the reply in flight and a push arrive once, on the new connection", async () => {
  const peer = new Peer();
  const gate = new GateClient({
    url: await peer.url(),
    WebSocket,
    encoding: "json",
    reconnect: { initialDelay: 1, maxDelay: 1 },
  });
  try {
    await gate.connect();
    const login = gate.call("auth.login", { username: "al", password: "pw" });
    const asked = await peer.next("auth.login");
    assert.deepEqual(asked.frame.args, { username: "al", password: "pw", resume: true }); // asked for by default
    send(asked.ws, { id: asked.frame.id, ok: true, data: { uid: 7, token: "jwt", resume: GRANT }, seq: 1 });
    await login;
    assert.equal(gate.resumable, true);

    const pushes: unknown[] = [];
    gate.onPush("mail.new", (data) => pushes.push(data));
    const slow = gate.call("testkit.sleep", { seconds: 1 });
    const sleeping = await peer.next("testkit.sleep");
    const resumed = new Promise((resolve) => gate.on("resumed", resolve));
    const failed: unknown[] = [];
    gate.on("resumeFailed", (why) => failed.push(why));
    sleeping.ws.terminate(); // the network drops

    const resume = await peer.next("session.resume");
    assert.deepEqual(resume.frame.args, { token: "r1", received: 1 });
    send(resume.ws, {
      id: resume.frame.id,
      ok: true,
      data: { uid: 7, resume: { ...GRANT, token: "r2" }, replayed: 2 },
    });
    send(resume.ws, { event: "mail.new", data: "while away", seq: 2 });
    send(resume.ws, { id: sleeping.frame.id, ok: true, data: "slept", seq: 3 });
    send(resume.ws, { event: "mail.new", data: "while away", seq: 2 }); // a duplicate is never delivered
    send(resume.ws, { event: "mail.new", data: "after", seq: 4 });
    assert.deepEqual(await resumed, { uid: 7, replayed: 2 });
    assert.equal(await slow, "slept");
    const ack = await peer.next("session.ack"); // received grew by buffer / 4
    assert.ok((ack.frame.args.received as number) >= 3, JSON.stringify(ack.frame.args));
    send(ack.ws, { id: ack.frame.id, ok: true, data: {}, seq: 5 });
    const echo = gate.call("sys.echo", { a: 1 });
    const echoed = await peer.next("sys.echo");
    send(echoed.ws, { id: echoed.frame.id, ok: true, data: { a: 1 }, seq: 6 });
    await echo;
    assert.deepEqual(pushes, ["while away", "after"]);
    assert.deepEqual(failed, []);
    assert.equal(peer.connections, 2);

    // A resume the server refuses: the call in flight fails as lost, and the client binds with its token.
    const lost = gate.call("testkit.sleep", { seconds: 1 });
    const again = await peer.next("testkit.sleep");
    const refused = new Promise((resolve) => gate.on("resumeFailed", resolve));
    again.ws.terminate();
    const second = await peer.next("session.resume");
    assert.deepEqual(second.frame.args, { token: "r2", received: 6 });
    send(second.ws, {
      id: second.frame.id,
      ok: false,
      error: { code: "resume_failed", message: "expired: the grace period ended" },
    });
    await assert.rejects(lost, (error: unknown) => {
      assert.ok(error instanceof ConnectionError);
      assert.equal(error.code, ClientErrorCodes.DISCONNECTED);
      return true;
    });
    assert.deepEqual(await refused, { reason: "expired", message: "expired: the grace period ended" });
    const bind = await peer.next("session.bind");
    assert.deepEqual(bind.frame.args, { token: "jwt", resume: true });
    const connected = new Promise((resolve) => gate.on("connected", resolve));
    send(bind.ws, { id: bind.frame.id, ok: true, data: { uid: 7, resume: { ...GRANT, token: "r3" } }, seq: 1 });
    assert.deepEqual(await connected, { reconnected: true, uid: 7, resumed: false });
    assert.equal(gate.resumable, true);
  } finally {
    await gate.close();
    await peer.close();
  }
});

test("a server without resume refuses the argument: the login is asked again without it", async () => {
  const peer = new Peer();
  const gate = new GateClient({ url: await peer.url(), WebSocket, encoding: "json", reconnect: false });
  try {
    await gate.connect();
    const login = gate.call("auth.login", { username: "al", password: "pw" });
    const first = await peer.next("auth.login");
    assert.equal(first.frame.args.resume, true);
    send(first.ws, {
      id: first.frame.id,
      ok: false,
      error: { code: "bad_request", message: "unknown argument resume for auth.login" },
    });
    const second = await peer.next("auth.login");
    assert.deepEqual(second.frame.args, { username: "al", password: "pw" });
    send(second.ws, { id: second.frame.id, ok: true, data: { uid: 7, token: "jwt" } });
    assert.deepEqual(await login, { uid: 7, token: "jwt" });
    assert.equal(gate.resumable, false);
    const bind = gate.call("session.bind", { token: "jwt" }); // not asked again
    const third = await peer.next("session.bind");
    assert.deepEqual(third.frame.args, { token: "jwt" });
    send(third.ws, { id: third.frame.id, ok: true, data: { uid: 7 } });
    await bind;
    // Without resume, a drop fails the call in flight as before.
    const inflight = gate.call("testkit.sleep", { seconds: 1 });
    (await peer.next("testkit.sleep")).ws.terminate();
    await assert.rejects(
      inflight,
      (error: unknown) => error instanceof ConnectionError && error.code === "disconnected",
    );
  } finally {
    await gate.close();
    await peer.close();
  }
});
