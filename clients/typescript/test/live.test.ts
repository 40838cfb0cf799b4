// Against a live `gameserver run` (roles gate, auth, worker, chat; the test modules of tests/fixtures loaded):
// tests/blackbox/test_sdk_typescript.py starts it and sets GAMESERVER_WS and GAMESERVER_HTTP. Without them these
// tests are skipped.

import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { after, before, describe, test } from "node:test";

import WebSocket from "ws";

import {
  Auth,
  CallError,
  CallTimeoutError,
  ChatClient,
  ChatError,
  ClientErrorCodes,
  ConnectionError,
  ErrorCodes,
  FamilyRole,
  GameApi,
  GateClient,
  HttpError,
  isError,
  MailKind,
  type ChannelHistory,
  type ChatIdentity,
  type ChatMessage,
  type MailSummary,
  type Session,
} from "../src/index.js";

const WS = process.env.GAMESERVER_WS;
const HTTP = process.env.GAMESERVER_HTTP;
const skip = WS === undefined || HTTP === undefined ? "set GAMESERVER_WS and GAMESERVER_HTTP (pytest does)" : false;
const run = `${process.pid}${Date.now() % 100000}`;
const PASSWORD = "correct horse battery";

/** A TCP proxy in front of the WebSocket port: `drop()` cuts every connection through it, as a network would;
 * `hold()` keeps new connections waiting (not yet through to the server) until `release()`; `forwarded()` says
 * when the next bytes from a client are in the server's socket. */
class Proxy {
  readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private held: net.Socket[] | null = null;
  private flushed: Array<() => void> = [];

  constructor(private readonly target: URL) {
    this.server = net.createServer((client) => {
      if (this.held !== null) {
        client.pause();
        this.held.push(client);
      } else {
        this.pipe(client);
      }
    });
  }

  hold(): void {
    this.held = [];
  }

  forwarded(): Promise<void> {
    return new Promise((resolve) => this.flushed.push(resolve));
  }

  release(): void {
    const held = this.held ?? [];
    this.held = null;
    held.forEach((client) => {
      this.pipe(client);
      client.resume();
    });
  }

  private pipe(client: net.Socket): void {
    const upstream = net.connect(Number(this.target.port), this.target.hostname);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      socket.on("error", () => socket.destroy());
    }
    client.on("data", (chunk) => upstream.write(chunk, () => this.flushed.splice(0).forEach((resolve) => resolve())));
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }

  async listen(): Promise<string> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    return `ws://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  drop(): void {
    for (const socket of this.sockets) {
      socket.destroy();
    }
  }

  async close(): Promise<void> {
    this.release();
    this.drop();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

function expectCode(code: string, type: new (...args: never[]) => Error = CallError) {
  return (error: unknown) => {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${String(error)}`);
    assert.ok(isError(error, code), `expected code ${code}, got ${String(error)}`);
    return true;
  };
}

describe("against a live server", { skip }, () => {
  const proxy = new Proxy(new URL(WS ?? "ws://127.0.0.1:1"));
  const chatProxy = new Proxy(new URL(WS ?? "ws://127.0.0.1:1"));
  let chatViaProxy: string;
  let aliceAuth: Auth;
  let alice: GateClient; // through the proxy, bound with the HTTP login's token
  let bob: GateClient; // direct, logged in over the gate
  let a: GameApi;
  let b: GameApi;
  let aliceUid: number;
  let bobUid: number;

  before(async () => {
    const viaProxy = await proxy.listen();
    chatViaProxy = await chatProxy.listen();
    aliceAuth = new Auth({ url: HTTP! });
    const session = await aliceAuth.register(`alice${run}`, PASSWORD, "Alice");
    aliceUid = session.uid;
    // Bound with session.bind on every reconnect: no resume (the resume test has its own client).
    alice = new GateClient({ url: `${viaProxy}/gate`, auth: aliceAuth, WebSocket, timeout: 10_000, resume: false });
    await alice.connect();
    bob = new GateClient({ url: `${WS}/gate`, WebSocket, encoding: "json" });
    await bob.connect();
    a = new GameApi(alice);
    b = new GameApi(bob);
    bobUid = (await b.auth.register({ username: `bob${run}`, password: PASSWORD, display_name: "Bob" })).uid;
  });

  after(async () => {
    aliceAuth.stop();
    await Promise.all([alice.close(), bob.close()]);
    await Promise.all([proxy.close(), chatProxy.close()]);
  });

  test("the connection is bound after connect and after a gate register", async () => {
    assert.equal(alice.uid, aliceUid);
    assert.equal(bob.uid, bobUid);
    assert.equal(bob.token !== null, true);
    assert.equal(typeof (await a.sys.time()), "number");
    assert.deepEqual(await bob.call("sys.echo", { hello: "world" }), { hello: "world" });
  });

  test("account: profile, rename, names", async () => {
    assert.deepEqual(await a.account.profile(), { uid: aliceUid, name: "Alice", world: 1, family: null });
    assert.equal((await b.account.rename({ name: "Bobby" })).name, "Bobby");
    const { players } = await a.account.names({ players: [bobUid, aliceUid] });
    assert.deepEqual(players, [
      { uid: bobUid, name: "Bobby" },
      { uid: aliceUid, name: "Alice" },
    ]);
    await assert.rejects(a.account.profile({ player: 999_999_999 }), expectCode(ErrorCodes.PLAYER_NOT_FOUND));
  });

  test("auth: a gate login, a refresh, a nonce; wrong credentials are a typed error", async () => {
    const login = await b.auth.login({ username: `bob${run}`, password: PASSWORD });
    assert.equal(login.uid, bobUid);
    const refreshed = await b.auth.refresh();
    assert.equal(refreshed.uid, bobUid);
    assert.equal(bob.token, refreshed.token);
    assert.equal(typeof (await b.auth.nonce()).nonce, "string");
    await assert.rejects(
      b.auth.login({ username: `bob${run}`, password: "wrong password!" }),
      expectCode("wrong_credentials"),
    );
    await assert.rejects(new Auth({ url: HTTP! }).login(`bob${run}`, "wrong password!"), (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.status, 401);
      assert.equal(error.code, "wrong_credentials");
      return true;
    });
  });

  test("the HTTP token is refreshed before it expires", async () => {
    const auth = new Auth({ url: HTTP!, refreshAt: 0.00001 }); // ~1 s into a 24 h token
    try {
      const first = await auth.login(`alice${run}`, PASSWORD);
      const refreshed = await new Promise<Session>((resolve) => auth.on("token", resolve));
      assert.notEqual(refreshed.token, first.token);
      assert.equal(auth.token, refreshed.token);
      assert.equal(typeof (await auth.nonce()).nonce, "string"); // the new token works
    } finally {
      auth.stop();
    }
  });

  test("inventory and leaderboard", async () => {
    assert.deepEqual(await a.inventory.get(), { items: [] });
    await assert.rejects(a.inventory.discard({ item: 1, count: 1 }), expectCode(ErrorCodes.NOT_ENOUGH_ITEMS));
    const score = Date.now(); // above any earlier run's against the same server
    assert.deepEqual(await a.leaderboard.submit({ board: "global", score }), { best: score, improved: true });
    assert.deepEqual(await a.leaderboard.submit({ board: "global", score: 1 }), { best: score, improved: false });
    assert.deepEqual(await a.leaderboard.rank({ board: "global" }), { score, rank: 1 });
    const top = await b.leaderboard.top({ board: "global", limit: 5 });
    assert.equal(top.board, "global");
    assert.deepEqual(top.scores[0], { uid: aliceUid, score });
    await assert.rejects(a.leaderboard.rank({ board: "nope" }), expectCode(ErrorCodes.LEADERBOARD_UNKNOWN_BOARD));
  });

  test("mail: a send pushes mail.new to the recipient; list, read, claim, delete", async () => {
    const pushed = new Promise<MailSummary>((resolve) => {
      const stop = bob.onPush<MailSummary>("mail.new", (mail) => {
        stop();
        resolve(mail);
      });
    });
    const { mail_id } = await a.mail.send({ to: bobUid, subject: "hi", body: "hello Bob" });
    const mail = await pushed;
    assert.equal(mail.mail_id, mail_id);
    assert.equal(mail.kind, MailKind.PLAYER);
    assert.equal(mail.from, aliceUid);
    const page = await b.mail.list();
    assert.equal(page.unread, 1);
    assert.equal(page.mails[0]?.subject, "hi");
    assert.equal((await b.mail.read({ mail_id })).body, "hello Bob");
    await assert.rejects(b.mail.claim({ mail_id }), expectCode(ErrorCodes.NOTHING_TO_CLAIM));
    assert.deepEqual(await b.mail.delete({ mail_id }), { mail_id });
  });

  test("friends: request, accept (pushed to the asker), list, remove", async () => {
    const accepted = new Promise<unknown>((resolve) => alice.onPush("friends.accepted", resolve));
    const asked = await a.friends.request({ to: bobUid });
    assert.equal(asked.accepted, false);
    assert.deepEqual((await b.friends.list()).requests, [{ uid: aliceUid, name: "Alice" }]);
    assert.deepEqual(await b.friends.accept({ sender: aliceUid }), { uid: aliceUid, name: "Alice" });
    assert.deepEqual(await accepted, { uid: bobUid, name: "Bobby" });
    const [friend] = (await a.friends.list()).friends; // with presence (issue 16): Bobby is logged in
    assert.deepEqual([friend.uid, friend.name, friend.online], [bobUid, "Bobby", true]);
    assert.equal(typeof friend.last_seen, "number");
    await assert.rejects(b.friends.decline({ sender: aliceUid }), expectCode(ErrorCodes.FRIEND_REQUEST_NOT_FOUND));
    assert.deepEqual(await a.friends.remove({ friend: bobUid }), { uid: bobUid });
  });

  test("family and chat: public and family channels, typed chat errors", async () => {
    const chat = new ChatClient({ url: `${chatViaProxy}/chat`, nonce: () => aliceAuth.nonce(), WebSocket });
    const bobChat = new ChatClient({ url: `${WS}/chat`, nonce: () => b.auth.nonce(), WebSocket });
    try {
      const me = await chat.connect();
      assert.deepEqual(me, { uid: aliceUid, name: "Alice", world: 1, family: null });
      await bobChat.connect();

      const heard = new Promise<ChatMessage>((resolve) => bobChat.on("public", resolve));
      chat.say("public", "hello, world  ");
      const message = await heard;
      assert.equal(message.channel, "public");
      assert.equal(message.uid, aliceUid);
      assert.equal(message.text, "hello, world  ");
      assert.equal(typeof message.id, "string");
      assert.equal(typeof message.ts, "number");

      // The server keeps the channel's last lines (the test server sets chat.history_on_join).
      const history = await chat.history("public", 5);
      assert.equal(history.channel, "public");
      assert.deepEqual(history.lines[history.lines.length - 1], message);
      await assert.rejects(chat.history("family"), expectCode("bad_request", ChatError)); // not in a family yet

      const refused = new Promise<ChatError>((resolve) => chat.on("error", resolve));
      chat.say("family", "anyone?");
      assert.equal((await refused).code, "not_in_family");

      const family = await a.family.create({ name: `Otters${run}` });
      assert.deepEqual((await b.family.join({ family_id: family.family_id })).role, FamilyRole.MEMBER);
      const info = await a.family.members();
      assert.deepEqual(
        info.members.map((m) => [m.uid, m.role]),
        [
          [aliceUid, FamilyRole.OWNER],
          [bobUid, FamilyRole.MEMBER],
        ],
      );
      const familyHeard = new Promise<ChatMessage>((resolve) => bobChat.on("family", resolve));
      chat.say("family", "welcome");
      const welcome = await familyHeard;
      assert.equal(welcome.text, "welcome");
      const familyHistory = await bobChat.history("family");
      assert.deepEqual(familyHistory, { channel: "family", lines: [welcome] });

      assert.deepEqual(await a.family.set_role({ member: bobUid, role: FamilyRole.ELDER }), {
        uid: bobUid,
        role: FamilyRole.ELDER,
      });
      await assert.rejects(b.family.kick({ member: aliceUid }), expectCode(ErrorCodes.FORBIDDEN));
      assert.deepEqual(await b.family.leave(), { family_id: family.family_id, disbanded: false });
      assert.deepEqual(await a.family.disband(), { family_id: family.family_id, members: [aliceUid] });
      await assert.rejects(a.family.members(), expectCode(ErrorCodes.NOT_IN_FAMILY));

      // A dropped chat connection logs in again with a fresh nonce, and catches up on the public channel.
      const again = new Promise<ChatIdentity>((resolve) => chat.on("login", resolve));
      const caughtUp = new Promise<ChannelHistory>((resolve) => chat.on("history", resolve));
      chatProxy.drop();
      assert.deepEqual(await again, { uid: aliceUid, name: "Alice", world: 1, family: null });
      const unasked = await caughtUp;
      assert.equal(unasked.channel, "public");
      assert.deepEqual(
        unasked.lines.find((line) => line.id === message.id),
        message,
      );
      const heardAgain = new Promise<ChatMessage>((resolve) => bobChat.on("public", resolve));
      chat.say("public", "back");
      assert.equal((await heardAgain).text, "back");
    } finally {
      await Promise.all([chat.close(), bobChat.close()]);
    }
  });

  test("a dropped connection reconnects and is bound again; calls meanwhile queue or fail", async () => {
    const events: string[] = [];
    const connected = new Promise<{ reconnected: boolean; uid: number | null }>((resolve) => {
      const stop = alice.on("connected", (info) => {
        stop();
        resolve(info);
      });
    });
    const during = new Promise<[Promise<unknown>, Promise<unknown>]>((resolve) => {
      const stop = alice.on("reconnecting", () => {
        stop();
        events.push(alice.state);
        resolve([a.account.profile(), a.sys.time({ whileDisconnected: "fail" })]);
      });
    });
    proxy.drop();
    const [queued, failed] = await during;
    await assert.rejects(failed, expectCode(ClientErrorCodes.NOT_CONNECTED, ConnectionError));
    assert.deepEqual(await connected, { reconnected: true, uid: aliceUid, resumed: false }); // an HTTP login's token
    assert.deepEqual(events, ["reconnecting"]);
    assert.equal(((await queued) as { uid: number }).uid, aliceUid); // a login-needing call: bound again
    assert.equal((await a.account.profile({}, { whileDisconnected: "fail" })).uid, aliceUid);
  });

  test("resume: a drop during a slow call; its reply and a push sent meanwhile arrive once, after the resume", async () => {
    const carolProxy = new Proxy(new URL(WS!));
    const carol = new GateClient({
      url: `${await carolProxy.listen()}/gate`,
      WebSocket,
      reconnect: { initialDelay: 1, maxDelay: 50 },
    });
    const c = new GameApi(carol);
    try {
      await carol.connect();
      const carolUid = (await c.auth.register({ username: `carol${run}`, password: PASSWORD })).uid;
      assert.equal(carol.resumable, true); // asked for by default
      const mails: MailSummary[] = [];
      carol.onPush<MailSummary>("mail.new", (mail) => mails.push(mail));
      const resumed = new Promise<{ uid: number; replayed: number }>((resolve) => carol.on("resumed", resolve));
      const failed: unknown[] = [];
      carol.on("resumeFailed", (why) => failed.push(why));

      const through = carolProxy.forwarded();
      const slow = carol.call<number>("testkit.sleep", { seconds: 0.5 });
      await through; // the request is in the server's socket: the drop cannot lose it
      carolProxy.hold(); // reconnects wait until the push below is sent
      carolProxy.drop();
      const { mail_id } = await b.mail.send({ to: carolUid, subject: "while away", body: "kept for you" });
      carolProxy.release();

      assert.equal(await slow, 0.5); // its reply came on the new connection
      const { uid, replayed } = await resumed;
      assert.equal(uid, carolUid);
      assert.ok(replayed >= 1, `replayed ${replayed}`);
      assert.equal((await c.account.profile()).uid, carolUid); // bound as before the drop, no token sent
      assert.deepEqual(
        mails.map((mail) => mail.mail_id),
        [mail_id],
      );
      assert.deepEqual(failed, []);

      // A resume the server refuses: the player logged out elsewhere meanwhile. The call in flight fails as lost.
      const refused = new Promise<{ reason: string }>((resolve) => carol.on("resumeFailed", resolve));
      const through2 = carolProxy.forwarded();
      const lost = carol.call("testkit.sleep", { seconds: 0.5 });
      await through2;
      carolProxy.hold();
      carolProxy.drop();
      const elsewhere = new Auth({ url: HTTP! });
      await elsewhere.login(`carol${run}`, PASSWORD);
      await elsewhere.logout();
      carolProxy.release();
      await assert.rejects(lost, expectCode(ClientErrorCodes.DISCONNECTED, ConnectionError));
      const { reason } = await refused;
      assert.ok(["replaced", "revoked"].includes(reason), reason);
    } finally {
      await carol.close();
      await carolProxy.close();
    }
  });

  test("a call times out on the client; the server's own deadline is a typed error", async () => {
    await assert.rejects(bob.call("testkit.sleep", { seconds: 1 }, { timeout: 50 }), (error: unknown) => {
      assert.ok(error instanceof CallTimeoutError);
      assert.equal(error.code, ErrorCodes.TIMEOUT);
      assert.equal(error.fn, "testkit.sleep");
      return true;
    });
    await assert.rejects(bob.call("testkit.hang"), expectCode(ErrorCodes.TIMEOUT));
    await assert.rejects(bob.call("no.such"), expectCode(ErrorCodes.UNKNOWN_FUNCTION));
    await assert.rejects(bob.call("account.rename", { name: 5 }), expectCode(ErrorCodes.BAD_REQUEST));
  });
});
