// A small game loop: log in (or register), connect the gate and the chat, then tick: read the inventory and the
// mailbox, submit a score, say something. Run it against a server on the default ports:
//   npm run build && node dist/examples/bot.js [username] [ticks]
// GAMESERVER_WS / GAMESERVER_HTTP point it elsewhere (ws://host:8881, http://host:8000).

import WebSocket from "ws"; // Node only: browsers, Cocos Creator and Phaser have a global WebSocket

import { Auth, ChatClient, ErrorCodes, GameApi, GateClient, isError, type MailSummary } from "../src/index.js";

const WS = process.env.GAMESERVER_WS ?? "ws://127.0.0.1:8881";
const HTTP = process.env.GAMESERVER_HTTP ?? "http://127.0.0.1:8000";
const username = process.argv[2] ?? "bot1";
const ticks = Number(process.argv[3] ?? "5");
const password = "correct horse battery";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  // 1. An account: the token is kept and refreshed before it expires.
  const auth = new Auth({ url: HTTP });
  try {
    await auth.login(username, password);
  } catch (error) {
    if (!isError(error, "wrong_credentials")) {
      throw error;
    }
    await auth.register(username, password);
  }

  // 2. The gate: bound with the token now and after every reconnect; calls made while it reconnects wait.
  const gate = new GateClient({ url: `${WS}/gate`, auth, WebSocket });
  const game = new GameApi(gate);
  gate.on("reconnecting", ({ attempt, delay }) =>
    console.log(`gate: reconnect #${attempt} in ${Math.round(delay)} ms`),
  );
  gate.onPush<MailSummary>("mail.new", (mail) => console.log(`mail from ${mail.from_name}: ${mail.subject}`));
  await gate.connect();
  const me = await game.account.profile();
  console.log(`playing as ${me.name} (uid ${me.uid}, world ${me.world})`);

  // 3. The chat: a fresh nonce for each (re)connect.
  const chat = new ChatClient({ url: `${WS}/chat`, nonce: () => auth.nonce(), WebSocket });
  chat.on("public", (message) => console.log(`[world] ${message.name}: ${message.text}`));
  chat.on("error", (error) => console.log(`chat refused: ${error.code}`));
  await chat.connect();

  // 4. The loop.
  let best = 0;
  for (let tick = 1; tick <= ticks; tick += 1) {
    const { items } = await game.inventory.get();
    const { unread } = await game.mail.list({ size: 10 });
    const score = tick * 100 + Math.floor(Math.random() * 100);
    try {
      best = (await game.leaderboard.submit({ board: "global", score })).best;
    } catch (error) {
      if (!isError(error, ErrorCodes.LEADERBOARD_UNKNOWN_BOARD)) {
        throw error;
      }
    }
    const text = `tick ${tick}: ${items.length} kinds of items, ${unread} unread mails, best ${best}`;
    const echoed = new Promise<void>((resolve) => {
      const stop = chat.on("public", (message) => {
        if (message.uid === me.uid && message.text === text) {
          stop();
          resolve(); // the sender gets its own messages too
        }
      });
    });
    chat.say("public", text);
    await Promise.all([echoed, sleep(200)]);
  }

  await Promise.all([chat.close(), gate.close()]);
  auth.stop();
  console.log(`done: best score ${best}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
