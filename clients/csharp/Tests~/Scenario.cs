// The SDK's end-to-end scenario, a console program run under mono against a live `gameserver run` (with the
// test fixture modules): register, login, typed calls into every shipped module, pushes, chat and its history, a
// dropped connection resumed (through a TCP proxy), a forced disconnect and reconnect with the session re-bound, a
// timeout, typed errors.
//
//   mono Scenario.exe <http url> <ws url>   e.g. http://127.0.0.1:8000 ws://127.0.0.1:8881
//
// It prints one "ok <step>" line per step. At "restart" it waits for the test to restart the server on the same
// ports and to answer "restarted" on stdin. Any failure prints "FAIL <why>" and exits 1.
// Callbacks are checked to arrive on the main thread: the program runs under a single-threaded
// SynchronizationContext, as a Unity or Godot game does, and one client is pumped by hand with Update().
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using GameServer.Api;
using GameServer.Client;

namespace GameServer.Scenario
{
    /// <summary>A game's main thread: runs posted callbacks in order, and the tick hooks between them.</summary>
    sealed class MainLoop : SynchronizationContext
    {
        readonly BlockingCollection<KeyValuePair<SendOrPostCallback, object>> queue =
            new BlockingCollection<KeyValuePair<SendOrPostCallback, object>>();
        public readonly List<Action> Ticks = new List<Action>();
        public int ThreadId;

        public override void Post(SendOrPostCallback d, object state)
        {
            queue.Add(new KeyValuePair<SendOrPostCallback, object>(d, state));
        }

        public override void Send(SendOrPostCallback d, object state) { throw new NotSupportedException(); }

        public void Run(Func<Task> main)
        {
            ThreadId = Thread.CurrentThread.ManagedThreadId;
            SetSynchronizationContext(this);
            var task = main();
            while (!task.IsCompleted)
            {
                KeyValuePair<SendOrPostCallback, object> item;
                if (queue.TryTake(out item, 10)) item.Key(item.Value);
                foreach (var tick in Ticks) tick(); // a frame: Update() for the clients without a context
            }
            task.GetAwaiter().GetResult();
        }
    }

    /// <summary>A TCP proxy in front of the server: <see cref="Drop"/> cuts every connection through it, as a
    /// network would; <see cref="Hold"/> keeps new connections waiting until <see cref="Release"/>;
    /// <see cref="Forwarded"/> completes when the next bytes from a client are in the server's socket.</summary>
    sealed class TcpProxy
    {
        readonly TcpListener listener = new TcpListener(IPAddress.Loopback, 0);
        readonly Uri target;
        readonly object sync = new object();
        readonly List<TcpClient> open = new List<TcpClient>();
        TaskCompletionSource<bool> released; // null: not holding
        TaskCompletionSource<bool> forwarded = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);

        public TcpProxy(Uri target)
        {
            this.target = target;
            listener.Start();
            Task.Run(AcceptLoop);
        }

        public int Port { get { return ((IPEndPoint)listener.LocalEndpoint).Port; } }

        public Task Forwarded() { lock (sync) return forwarded.Task; }

        public void Hold() { lock (sync) released = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously); }

        public void Release()
        {
            TaskCompletionSource<bool> holding;
            lock (sync)
            {
                holding = released;
                released = null;
            }
            if (holding != null) holding.TrySetResult(true);
        }

        public void Drop()
        {
            lock (sync)
            {
                foreach (var c in open) c.Close();
                open.Clear();
            }
        }

        public void Stop()
        {
            listener.Stop();
            Release();
            Drop();
        }

        async Task AcceptLoop()
        {
            while (true)
            {
                TcpClient client;
                try { client = await listener.AcceptTcpClientAsync().ConfigureAwait(false); }
                catch (Exception) { return; } // stopped
                GC.KeepAlive(Serve(client)); // each connection runs on its own
            }
        }

        async Task Serve(TcpClient client)
        {
            Task holding;
            lock (sync) holding = released == null ? Task.FromResult(true) : (Task)released.Task;
            await holding.ConfigureAwait(false);
            var upstream = new TcpClient();
            try
            {
                await upstream.ConnectAsync(target.Host, target.Port).ConfigureAwait(false);
                lock (sync)
                {
                    open.Add(client);
                    open.Add(upstream);
                }
                await Task.WhenAny(Copy(client.GetStream(), upstream.GetStream(), true),
                    Copy(upstream.GetStream(), client.GetStream(), false)).ConfigureAwait(false);
            }
            catch (Exception) { } // the server or the client went away: close both
            client.Close();
            upstream.Close();
        }

        async Task Copy(Stream from, Stream to, bool toServer)
        {
            var buffer = new byte[8192];
            try
            {
                while (true)
                {
                    var n = await from.ReadAsync(buffer, 0, buffer.Length).ConfigureAwait(false);
                    if (n == 0) return;
                    await to.WriteAsync(buffer, 0, n).ConfigureAwait(false);
                    if (!toServer) continue;
                    TaskCompletionSource<bool> done;
                    lock (sync)
                    {
                        done = forwarded;
                        forwarded = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                    }
                    done.TrySetResult(true);
                }
            }
            catch (Exception) { } // dropped
        }
    }

    static class Program
    {
        static readonly TimeSpan Patience = TimeSpan.FromSeconds(60); // a hang guard: nothing asserts on time
        static MainLoop loop;

        static int Main(string[] args)
        {
            loop = new MainLoop();
            try
            {
                loop.Run(() => Run(args[0], args[1]));
                Console.WriteLine("done");
                return 0;
            }
            catch (Exception e)
            {
                Console.WriteLine("FAIL " + e);
                return 1;
            }
        }

        static void Check(bool condition, string what)
        {
            if (!condition) throw new Exception("check failed: " + what);
        }

        static void Ok(string step)
        {
            Console.WriteLine("ok " + step);
            Console.Out.Flush();
        }

        static void OnMain(string what)
        {
            Check(Thread.CurrentThread.ManagedThreadId == loop.ThreadId, what + " on the main thread");
        }

        static async Task<T> Within<T>(Task<T> task, string what)
        {
            var first = await Task.WhenAny(task, Task.Delay(Patience));
            if (first != task) throw new Exception("gave up waiting for " + what);
            return await task;
        }

        static async Task<GameServerException> Throws(Func<Task> call, string code, string what)
        {
            try
            {
                await call();
            }
            catch (GameServerException e)
            {
                Check(e.Code == code, what + ": code " + e.Code + " (" + e.Message + "), expected " + code);
                return e;
            }
            throw new Exception(what + ": no exception, expected " + code);
        }

        static async Task Run(string httpUrl, string wsUrl)
        {
            var suffix = Guid.NewGuid().ToString("N").Substring(0, 8);
            var password = "correct horse battery";

            // -- register and log in over HTTP; the token is kept by the AuthClient
            var authA = new AuthClient(httpUrl);
            var authB = new AuthClient(httpUrl);
            var a = await authA.RegisterAsync("alice" + suffix, password, "Alice");
            var b = await authB.RegisterAsync("bob" + suffix, password, "Bob");
            Check(a.Uid > 0 && b.Uid > 0 && a.Uid != b.Uid, "two uids");
            await Throws(() => authA.RegisterAsync("alice" + suffix, password), ErrorCodes.USERNAME_TAKEN, "register twice");
            var login = await authA.LoginAsync("ALICE" + suffix, password);
            Check(login.Uid == a.Uid && authA.Token == login.Token, "login keeps the token");
            Check(authA.ExpiresAt.HasValue && authA.ExpiresAt.Value > DateTime.UtcNow, "token expiry read");
            var wrong = (HttpErrorException)await Throws(() => new AuthClient(httpUrl).LoginAsync("alice" + suffix, "wrong password!"),
                ErrorCodes.WRONG_CREDENTIALS, "wrong password");
            Check(wrong.Status == 401, "wrong password is 401");
            Ok("register login");

            // -- connect: A in msgpack with callbacks on this (main) thread's context; B in JSON pumped by Update()
            var clientA = new ApiClient(new ClientOptions(wsUrl + "/gate"), authA);
            var optionsB = new ClientOptions(wsUrl + "/gate") { Encoding = WireEncoding.Json, Callbacks = CallbackMode.Manual };
            var clientB = new ApiClient(optionsB, authB);
            loop.Ticks.Add(() => clientB.Update());
            await clientA.ConnectAsync();
            await clientB.ConnectAsync();
            Check(clientA.Uid == a.Uid && clientB.Uid == b.Uid, "both connections bound on connect");
            Ok("connect bind");

            // -- typed calls into every shipped module
            var now = await clientA.Sys.TimeAsync();
            Check(now > 1600000000000L, "sys.time is ms since the epoch");
            var echoArgs = new Dictionary<string, object> { { "n", 7L }, { "s", "é ✓" }, { "list", new List<object> { 1L, 2.5, true, null } } };
            foreach (var client in new GameClient[] { clientA, clientB })
            {
                var echoed = (IDictionary<string, object>)await client.CallAsync("sys.echo", echoArgs);
                Check((long)echoed["n"] == 7 && (string)echoed["s"] == "é ✓", "sys.echo round trip");
                var list = (List<object>)echoed["list"];
                Check(list.Count == 4 && (long)list[0] == 1 && (double)list[1] == 2.5 && (bool)list[2] && list[3] == null, "echo list");
            }
            await clientA.Account.RenameAsync("Alice Liddell");
            var profile = await clientB.Account.ProfileAsync(a.Uid);
            Check((string)Get(profile, "name") == "Alice Liddell" && (long)Get(profile, "uid") == a.Uid, "account.profile of another");
            var names = await clientA.Account.NamesAsync(new List<long> { a.Uid, b.Uid });
            Check(Count(Get(names, "players")) == 2, "account.names");
            var family = await clientA.Family.CreateAsync("fam" + suffix);
            var familyId = (long)Get(family, "family_id");
            await clientB.Family.JoinAsync(familyId);
            var members = await clientA.Family.MembersAsync();
            Check(Count(Get(members, "members")) == 2, "family.members");
            await clientA.Family.SetRoleAsync(b.Uid, (long)FamilyRole.ELDER);
            var inventory = await clientA.Inventory.GetAsync();
            Check(Get(inventory, "items") != null, "inventory.get");
            var best = await clientA.Leaderboard.SubmitAsync("global", 1234);
            Check((long)Get(best, "best") == 1234, "leaderboard.submit");
            var rank = await clientA.Leaderboard.RankAsync("global");
            Check((long)Get(rank, "score") == 1234, "leaderboard.rank");
            var top = await clientB.Leaderboard.TopAsync("global", limit: 5);
            Check(Count(Get(top, "scores")) >= 1, "leaderboard.top");
            var gateNonce = await clientA.Auth.NonceAsync();
            Check(((string)Get(gateNonce, "nonce")).Length > 0, "auth.nonce on the gate");
            var bound = await clientB.Session.BindAsync(authB.Token);
            Check((long)Get(bound, "uid") == b.Uid, "session.bind");
            Ok("typed calls");

            // -- pushes: a mail pushes mail.new to its recipient; an accepted friend request friends.accepted
            var mailNew = new TaskCompletionSource<object>();
            clientB.On("mail.new", data => { OnMain("mail.new (Update)"); mailNew.TrySetResult(data); });
            var accepted = new TaskCompletionSource<object>();
            clientA.On("friends.accepted", data => { OnMain("friends.accepted"); accepted.TrySetResult(data); });
            var sent = await clientA.Mail.SendAsync(b.Uid, "hello", "a letter");
            var mailId = (string)Get(sent, "mail_id");
            var pushed = (IDictionary<string, object>)await Within(mailNew.Task, "mail.new");
            Check((string)pushed["mail_id"] == mailId, "mail.new names the mail");
            var mails = await clientB.Mail.ListAsync();
            Check((long)Get(mails, "unread") >= 1, "mail.list");
            await clientB.Mail.ReadAsync(mailId);
            await Throws(() => clientB.Mail.ClaimAsync(mailId), ErrorCodes.NOTHING_TO_CLAIM, "claim a letter");
            await clientB.Mail.DeleteAsync(mailId);
            await clientA.Friends.RequestAsync(b.Uid);
            await clientB.Friends.AcceptAsync(a.Uid);
            await Within(accepted.Task, "friends.accepted");
            var friends = await clientA.Friends.ListAsync();
            Check(Count(Get(friends, "friends")) == 1, "friends.list");
            await clientA.Friends.RemoveAsync(b.Uid);
            var fired = await Within(Push(clientA, "testkit.pushed", () => clientA.CallAsync("testkit.push",
                new Dictionary<string, object> { { "event", "testkit.pushed" }, { "data", 42L } })), "testkit push");
            Check((long)fired == 42, "a push's data");
            Ok("push");

            // -- typed errors and a timeout
            await Throws(() => clientA.Family.JoinAsync(999999999), ErrorCodes.FAMILY_NOT_FOUND, "join no family");
            await Throws(() => clientA.Family.JoinAsync(familyId), ErrorCodes.ALREADY_IN_FAMILY, "join while in a family");
            await Throws(() => clientB.Friends.DeclineAsync(999999999), ErrorCodes.FRIEND_REQUEST_NOT_FOUND, "decline nothing");
            await Throws(() => clientA.Leaderboard.SubmitAsync("no-such-board", 1), ErrorCodes.LEADERBOARD_UNKNOWN_BOARD, "unknown board");
            await Throws(() => clientA.CallAsync("no.such"), ErrorCodes.UNKNOWN_FUNCTION, "unknown function");
            await Throws(() => clientA.Inventory.DiscardAsync((long)ItemKind.DIAMOND, 999), ErrorCodes.NOT_ENOUGH_ITEMS, "discard");
            var anonymous = new ApiClient(new ClientOptions(wsUrl + "/gate"));
            await anonymous.ConnectAsync();
            var e401 = await Throws(() => anonymous.Inventory.GetAsync(), ErrorCodes.UNAUTHORIZED, "no login");
            Check(e401 is ServerErrorException && ((ServerErrorException)e401).Fn == "inventory.get", "the error names its fn");
            await Throws(() => anonymous.CallAsync("testkit.hang"), ErrorCodes.TIMEOUT, "the server's deadline");
            var slow = anonymous.CallAsync("testkit.sleep", new Dictionary<string, object> { { "seconds", 30.0 } },
                new CallOptions { Timeout = TimeSpan.FromMilliseconds(300) });
            var late = await Throws(() => slow, ClientErrorCodes.Timeout, "the call's own timeout");
            Check(late is CallTimeoutException, "a CallTimeoutException");
            await anonymous.CloseAsync();
            await Throws(() => anonymous.Sys.TimeAsync(), ClientErrorCodes.NotConnected, "a call after close");
            Ok("errors timeout");

            // -- token refresh before expiry: an AuthClient refreshing at 0.001 % of a 24 h token (about 1 s)
            var eager = new AuthClient(httpUrl) { RefreshAt = 0.00001 };
            var first = await eager.LoginAsync("bob" + suffix, password);
            var refreshed = new TaskCompletionSource<Login>();
            eager.TokenChanged += fresh =>
            {
                OnMain("TokenChanged");
                if (fresh.Token != first.Token) refreshed.TrySetResult(fresh); // not the login's own event
            };
            var fresher = await Within(refreshed.Task, "the automatic refresh");
            Check(fresher.Token != first.Token && fresher.Uid == b.Uid && eager.Token == fresher.Token, "refreshed token kept");
            eager.Dispose();
            var viaGate = await clientA.Auth.RefreshAsync();
            Check(authA.Token == (string)Get(viaGate, "token"), "a gate auth.refresh updates the AuthClient");
            Ok("refresh");

            // -- chat: LOGIN with a nonce, PUBLIC and FAMILY messages as typed events
            var chatA = new ChatClient(new ChatOptions(wsUrl + "/chat"), authA);
            var chatB = new ChatClient(new ChatOptions(wsUrl + "/chat") { Callbacks = CallbackMode.Manual }, authB);
            loop.Ticks.Add(() => chatB.Update());
            var heard = new BlockingCollection<ChatMessage>();
            chatB.Message += m => { OnMain("chat message (Update)"); heard.Add(m); };
            var chatErrors = new BlockingCollection<GameServerException>();
            chatA.Error += e => { OnMain("chat error"); chatErrors.Add(e); };
            var whoA = await chatA.ConnectAsync();
            Check(whoA.Uid == a.Uid && whoA.Name == "Alice Liddell" && whoA.Family == familyId, "chat identity");
            var whoB = await chatB.ConnectAsync();
            Check(whoB.Uid == b.Uid, "chat identity of B");
            await chatA.SayAsync(ChatChannel.Public, "hello world ✓");
            var m1 = await Within(Take(heard), "a public message");
            Check(m1.Channel == ChatChannel.Public && m1.Uid == a.Uid && m1.Text == "hello world ✓" && m1.Name == "Alice Liddell", "public message");
            await chatA.SayAsync(ChatChannel.Family, "family only");
            var m2 = await Within(Take(heard), "a family message");
            Check(m2.Channel == ChatChannel.Family && m2.Text == "family only" && m2.Ts > 0, "family message");
            Check(m1.Id.Length > 0 && m2.Id != m1.Id, "messages carry ids");
            // The history: asked for, and sent unasked after a login (the test server sets chat.history_on_join).
            var publicLines = await chatA.HistoryAsync(ChatChannel.Public, 5);
            OnMain("HistoryAsync's continuation");
            var lastPublic = publicLines.Lines[publicLines.Lines.Count - 1];
            Check(publicLines.Channel == ChatChannel.Public && lastPublic.Id == m1.Id && lastPublic.Ts == m1.Ts &&
                  lastPublic.Text == m1.Text && lastPublic.Uid == a.Uid, "the public history ends with the message");
            var familyLines = await chatB.HistoryAsync(ChatChannel.Family);
            Check(familyLines.Lines.Count == 1 && familyLines.Lines[0].Id == m2.Id && familyLines.Lines[0].Channel == ChatChannel.Family,
                "the family history holds the family message");
            var chatC = new ChatClient(new ChatOptions(wsUrl + "/chat"), authB);
            var caughtUp = new BlockingCollection<ChannelHistory>();
            chatC.History += h => { OnMain("chat History"); caughtUp.Add(h); };
            await chatC.ConnectAsync();
            var unasked = new Dictionary<ChatChannel, ChannelHistory>();
            while (unasked.Count < 2)
            {
                var got = await Within(Take(caughtUp), "the HISTORY lines after a login");
                unasked[got.Channel] = got;
            }
            Check(unasked[ChatChannel.Public].Lines.Any(l => l.Id == m1.Id), "the public catch-up holds the message");
            Check(unasked[ChatChannel.Family].Lines.Any(l => l.Id == m2.Id), "the family catch-up holds the message");
            await chatC.CloseAsync();
            await clientB.Family.LeaveAsync(); // B's next chat login has no family
            await chatB.PingAsync();
            try
            {
                await chatA.SendLineAsync("PUBLIC", "two\nlines");
                throw new Exception("a line holding LF was sent");
            }
            catch (ArgumentException) { }
            Ok("chat");

            // -- resume: a drop (the proxy cuts the connection) during a slow call; its reply and a mail pushed
            // meanwhile arrive once, on the new connection
            var proxy = new TcpProxy(new Uri(wsUrl));
            var quick = new Backoff { Min = TimeSpan.FromMilliseconds(1), Max = TimeSpan.FromMilliseconds(50) };
            var clientC = new ApiClient(new ClientOptions("ws://127.0.0.1:" + proxy.Port + "/gate") { Backoff = quick });
            await clientC.ConnectAsync();
            var c = await clientC.Auth.RegisterAsync("carol" + suffix, password); // asks for resume by default
            Check(clientC.Resumable, "the server granted resume");
            var mailsC = new List<string>();
            clientC.On("mail.new", data => { OnMain("mail.new after a resume"); mailsC.Add((string)((IDictionary<string, object>)data)["mail_id"]); });
            var resumedC = new TaskCompletionSource<long>();
            clientC.Resumed += replayed => { OnMain("Resumed"); resumedC.TrySetResult(replayed); };
            var resumeFailedC = new List<string>();
            clientC.ResumeFailed += (reason, e) => resumeFailedC.Add(reason);
            var through = proxy.Forwarded();
            var slowC = clientC.CallAsync("testkit.sleep", new Dictionary<string, object> { { "seconds", 0.5 } });
            await Within(through.ContinueWith(_ => true), "the slow call on its way"); // in the server's socket: the drop cannot lose it
            proxy.Hold(); // the reconnect waits until the mail below is sent
            proxy.Drop();
            var kept = await clientA.Mail.SendAsync(c.Uid, "while away", "kept for you");
            proxy.Release();
            var slept = await Within(slowC, "the slow call's reply after the resume");
            Check((double)slept == 0.5, "the reply of the call in flight");
            var replayedC = await Within(resumedC.Task, "Resumed");
            Check(replayedC >= 1, "replayed " + replayedC);
            var whoC = await clientC.CallAsync("testkit.whoami"); // no token sent: the resumed binding
            Check((long)whoC == c.Uid, "bound as before the drop");
            Check(mailsC.Count == 1 && mailsC[0] == (string)Get(kept, "mail_id"), "the push sent meanwhile, once: " + mailsC.Count);
            Check(resumeFailedC.Count == 0, "no ResumeFailed");
            Ok("resume");
            await clientC.CloseAsync();
            proxy.Stop();

            // -- a forced disconnect: the server restarts on the same ports
            var reconnectedA = new TaskCompletionSource<bool>();
            clientA.Reconnected += () => { OnMain("Reconnected"); reconnectedA.TrySetResult(true); };
            var resumeFailedA = new TaskCompletionSource<string>();
            clientA.ResumeFailed += (reason, e) => resumeFailedA.TrySetResult(reason);
            var reconnectedB = new TaskCompletionSource<bool>();
            clientB.Reconnected += () => reconnectedB.TrySetResult(true);
            var chatBack = new TaskCompletionSource<ChatIdentity>();
            chatA.Reconnected += who => chatBack.TrySetResult(who);
            var down = new TaskCompletionSource<bool>();
            clientA.StateChanged += s => { if (s == ConnectionState.Reconnecting) down.TrySetResult(true); };
            Console.WriteLine("restart");
            Console.Out.Flush();
            await Within(down.Task, "the drop");
            // Calls made while reconnecting: queued by default, failed at once on request.
            var queued = clientA.CallAsync("sys.echo", new Dictionary<string, object> { { "queued", true } },
                new CallOptions { Timeout = Patience });
            await Throws(() => clientA.Sys.TimeAsync(new CallOptions { WhileReconnecting = WhileReconnecting.Fail }),
                ClientErrorCodes.NotConnected, "fail while reconnecting");
            var answer = await Within(Task.Run(() => Console.ReadLine()), "the test's restart");
            Check(answer == "restarted", "the test restarted the server");
            await Within(reconnectedA.Task, "clientA reconnected");
            await Within(reconnectedB.Task, "clientB reconnected");
            var queuedReply = (IDictionary<string, object>)await Within(queued, "the queued call");
            Check((bool)queuedReply["queued"], "the queued call went out after the reconnect");
            Check(clientA.Uid == a.Uid, "re-bound");
            // A restart loses the sessions the old process held: ResumeFailed, then bound again with the token.
            Check(resumeFailedA.Task.IsCompleted && resumeFailedA.Task.Result.Length > 0, "ResumeFailed before the re-bind");
            var whoami = await clientA.CallAsync("testkit.whoami"); // needs a login, sends no token: the binding
            Check((long)whoami == a.Uid, "the session is re-bound after the reconnect");
            var afterB = await clientB.Inventory.GetAsync();
            Check(Get(afterB, "items") != null, "B re-bound");
            var whoAgain = await Within(chatBack.Task, "chat reconnected with a new nonce");
            Check(whoAgain.Uid == a.Uid, "chat re-login");
            Ok("reconnect");

            // chatB may still be logging in again: its own Reconnected says when
            if (chatB.State != ConnectionState.Connected)
            {
                var chatBBack = new TaskCompletionSource<bool>();
                chatB.StateChanged += s => { if (s == ConnectionState.Connected) chatBBack.TrySetResult(true); };
                if (chatB.State != ConnectionState.Connected) await Within(chatBBack.Task, "chat B back");
            }
            await chatA.SayAsync(ChatChannel.Public, "after the restart");
            var m3 = await Within(Take(heard), "a message after the restart");
            Check(m3.Text == "after the restart", "chat works after the restart");
            var notInFamily = new TaskCompletionSource<GameServerException>();
            chatB.Error += e => notInFamily.TrySetResult(e);
            await chatB.SayAsync(ChatChannel.Family, "no family now");
            var refused = await Within(notInFamily.Task, "ERROR not_in_family");
            Check(refused.Code == ErrorCodes.NOT_IN_FAMILY, "chat error code " + refused.Code);
            await Throws(() => chatB.HistoryAsync(ChatChannel.Family), ErrorCodes.BAD_REQUEST, "a family history outside a family");
            Ok("chat after reconnect");

            await chatA.CloseAsync();
            await chatB.CloseAsync();
            await clientA.CloseAsync();
            await clientB.CloseAsync();
            Check(clientA.State == ConnectionState.Closed, "closed");
            authA.Dispose();
            authB.Dispose();
        }

        // A typed reply's field, whether the handler's reply is a TypedDict class or a map: the scenario reads
        // replies by their wire names so that it compiles against either generation of the typed layer.
        static object Get(object reply, string name)
        {
            var typed = reply as IWireValue;
            var map = (System.Collections.IDictionary)(typed != null ? typed.ToWire() : reply); // any value type
            return map.Contains(name) ? map[name] : null;
        }

        static int Count(object list)
        {
            return ((System.Collections.ICollection)list).Count;
        }

        static async Task<object> Push(GameClient client, string name, Func<Task<object>> trigger)
        {
            var got = new TaskCompletionSource<object>();
            Action<object> handler = data => { OnMain(name); got.TrySetResult(data); };
            client.On(name, handler);
            await trigger();
            var data2 = await got.Task;
            client.Off(name, handler);
            return data2;
        }

        static async Task<T> Take<T>(BlockingCollection<T> messages)
        {
            // Messages arrive on the main thread (Update): wait for one without blocking it.
            T m;
            while (!messages.TryTake(out m)) await Task.Delay(5);
            return m;
        }
    }
}
