// The gate over WebSocket (docs/PROTOCOL.md, "Gate: request / response"): requests matched to replies by id,
// pushes as events, session.bind after every (re)connect, automatic reconnect with backoff and jitter. Logins and
// binds ask for a resumable session ("Resume"): after a drop the next connection first tries session.resume, and
// calls in flight get their replies there instead of failing.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace GameServer.Client
{
    /// <summary>A server push: <c>{"event", "data"}</c>, e.g. <c>mail.new</c>.</summary>
    public sealed class PushEvent
    {
        public string Event { get; private set; }
        public object Data { get; private set; }

        public PushEvent(string name, object data) { Event = name; Data = data; }
    }

    /// <summary>One gate connection, kept up. Calls are <see cref="CallAsync"/> (the generated typed layer
    /// calls it too); results complete on the awaiting code's context, callbacks (events) go through the
    /// client's <see cref="Dispatcher"/>: create the client on the game's main thread, or call
    /// <see cref="Update"/> each frame where the thread has no SynchronizationContext.</summary>
    public class GameClient : IDisposable
    {
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false, true);
        static readonly Stopwatch Clock = Stopwatch.StartNew();
        const int ReceiveChunk = 16 * 1024;

        readonly ClientOptions options;
        readonly AuthClient auth;
        readonly Dispatcher dispatcher;
        readonly object sync = new object(); // guards everything below it
        readonly Dictionary<long, Pending> pending = new Dictionary<long, Pending>();
        readonly List<Pending> queued = new List<Pending>();
        readonly Dictionary<string, List<Action<object>>> handlers = new Dictionary<string, List<Action<object>>>();
        readonly SemaphoreSlim sendLock = new SemaphoreSlim(1, 1);
        readonly CancellationTokenSource lifetime = new CancellationTokenSource();
        ClientWebSocket socket;
        ConnectionState state = ConnectionState.Disconnected;
        long nextId;
        long? uid;
        readonly ResumeState resume = new ResumeState();
        bool resumeWanted;
        Timer ackTimer;

        /// <summary>The connection's state changed (dispatched).</summary>
        public event Action<ConnectionState> StateChanged;
        /// <summary>Every server push (dispatched); <see cref="On"/> subscribes to one event name.</summary>
        public event Action<PushEvent> Pushed;
        /// <summary>The connection is back after a drop, and re-bound when there is a token (dispatched).</summary>
        public event Action Reconnected;
        /// <summary>session.bind after a (re)connect was refused, e.g. <c>unauthorized</c> for a revoked or
        /// expired token: log in again (dispatched).</summary>
        public event Action<GameServerException> BindFailed;
        /// <summary>The session survived a drop (session.resume): the argument is how many messages kept for it
        /// follow (each delivered once); calls in flight get their replies. Raised before
        /// <see cref="Reconnected"/> (dispatched).</summary>
        public event Action<long> Resumed;
        /// <summary>The session could not be resumed: the reason (<c>expired</c>, <c>overflow</c>, <c>replaced</c>, <c>closed</c>,
        /// <c>lost</c>, <c>invalid</c>, <c>banned</c>, <c>revoked</c>) and the server's error. Calls in flight
        /// failed with <c>connection_lost</c>; the client binds with its token next, as after any reconnect
        /// (dispatched).</summary>
        public event Action<string, ServerErrorException> ResumeFailed;

        /// <param name="options">the gate URL and the client's behaviour</param>
        /// <param name="auth">where the token comes from: bound after every connect; <c>auth.login</c>,
        /// <c>auth.register</c> and <c>auth.refresh</c> made on this client update its token. May be null.</param>
        public GameClient(ClientOptions options, AuthClient auth = null)
        {
            if (options == null) throw new ArgumentNullException("options");
            this.options = options;
            this.auth = auth;
            resumeWanted = options.Resume;
            dispatcher = new Dispatcher(options.Callbacks);
        }

        /// <summary>Whether the session survives a dropped connection (the server granted resume to the last
        /// login or bind).</summary>
        public bool Resumable { get { lock (sync) return resume.Grant != null; } }

        public ConnectionState State { get { lock (sync) return state; } }

        /// <summary>The player the connection is bound to (session.bind or a gate login), else null.</summary>
        public long? Uid { get { lock (sync) return uid; } }

        public AuthClient AuthClient { get { return auth; } }

        public Dispatcher Dispatcher { get { return dispatcher; } }

        /// <summary>Runs the queued callbacks (see <see cref="GameServer.Client.Dispatcher.Update"/>).</summary>
        public int Update() { return dispatcher.Update(); }

        /// <summary>Calls <paramref name="handler"/> with the data of each push named <paramref name="name"/>.</summary>
        public void On(string name, Action<object> handler)
        {
            lock (sync)
            {
                List<Action<object>> list;
                if (!handlers.TryGetValue(name, out list)) handlers[name] = list = new List<Action<object>>();
                list.Add(handler);
            }
        }

        public void Off(string name, Action<object> handler)
        {
            lock (sync)
            {
                List<Action<object>> list;
                if (handlers.TryGetValue(name, out list)) list.Remove(handler);
            }
        }

        /// <summary>Opens the connection and binds it when the <see cref="AuthClient"/> has a token. Throws
        /// when the first connect fails; later drops reconnect on their own
        /// (<see cref="ClientOptions.Reconnect"/>).</summary>
        public async Task ConnectAsync()
        {
            lock (sync)
            {
                if (state != ConnectionState.Disconnected) throw new InvalidOperationException("already " + state);
                state = ConnectionState.Connecting;
            }
            RaiseState(ConnectionState.Connecting);
            try
            {
                await OpenAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                List<Pending> failed;
                lock (sync)
                {
                    if (state == ConnectionState.Connecting) state = ConnectionState.Disconnected;
                    failed = new List<Pending>(queued);
                    queued.Clear();
                }
                foreach (var p in failed) p.Fail(new ConnectionException(ClientErrorCodes.NotConnected, "connect failed", e));
                RaiseState(ConnectionState.Disconnected);
                throw;
            }
        }

        /// <summary>Calls <paramref name="fn"/> (<c>module.function</c>) with named <paramref name="args"/>; the
        /// reply's <c>data</c>, or throws <see cref="ServerErrorException"/> (the server's code),
        /// <see cref="CallTimeoutException"/> or <see cref="ConnectionException"/>.</summary>
        public Task<object> CallAsync(string fn, IDictionary<string, object> args = null, CallOptions callOptions = null)
        {
            var timeout = callOptions != null && callOptions.Timeout.HasValue ? callOptions.Timeout.Value : options.Timeout;
            var whileReconnecting = callOptions != null && callOptions.WhileReconnecting.HasValue
                ? callOptions.WhileReconnecting.Value : options.WhileReconnecting;
            var p = new Pending(Interlocked.Increment(ref nextId), fn, args ?? new Dictionary<string, object>(),
                callOptions == null ? null : callOptions.Token);
            ClientWebSocket ws;
            lock (sync)
            {
                AskResume(p);
                if (state == ConnectionState.Disconnected || state == ConnectionState.Closed)
                    return Failed(new ConnectionException(ClientErrorCodes.NotConnected, fn + ": the client is " + state));
                if (state != ConnectionState.Connected)
                {
                    if (whileReconnecting == WhileReconnecting.Fail)
                        return Failed(new ConnectionException(ClientErrorCodes.NotConnected, fn + ": the client is " + state));
                    queued.Add(p);
                    ws = null;
                }
                else
                {
                    pending[p.Id] = p;
                    ws = socket;
                }
            }
            StartTimer(p, timeout);
            if (ws != null) Send(ws, p);
            return p.Task;
        }

        /// <summary><see cref="CallAsync"/>, then <paramref name="convert"/> on the data (the generated layer's
        /// typed results).</summary>
        public async Task<T> CallAsync<T>(string fn, IDictionary<string, object> args, Func<object, T> convert,
            CallOptions callOptions = null)
        {
            var data = await CallAsync(fn, args, callOptions).ConfigureAwait(false);
            return convert(data);
        }

        /// <summary>Binds the connection to the AuthClient's token (done on every connect already; call it after
        /// logging in over HTTP on a connected client). Returns the uid.</summary>
        public async Task<long> BindAsync(string token = null)
        {
            token = token ?? (auth == null ? null : auth.Token);
            if (token == null) throw new InvalidOperationException("no token: log in first");
            var data = await CallAsync("session.bind", new Dictionary<string, object> { { "token", token } }).ConfigureAwait(false);
            var bound = Wire.Int(Wire.Field(data, "uid"));
            lock (sync) uid = bound;
            return bound;
        }

        /// <summary>Closes the connection for good: no reconnect; calls waiting fail with <c>not_connected</c>.</summary>
        public async Task CloseAsync()
        {
            ClientWebSocket ws;
            List<Pending> failed;
            lock (sync)
            {
                if (state == ConnectionState.Closed) return;
                state = ConnectionState.Closed;
                ws = socket;
                socket = null;
                resume.Forget();
                StopAckTimer();
                failed = new List<Pending>(queued);
                failed.AddRange(pending.Values);
                queued.Clear();
                pending.Clear();
            }
            lifetime.Cancel();
            foreach (var p in failed) p.Fail(new ConnectionException(ClientErrorCodes.NotConnected, p.Fn + ": the client was closed"));
            RaiseState(ConnectionState.Closed);
            if (ws != null)
            {
                try
                {
                    using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
                        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", cts.Token).ConfigureAwait(false);
                }
                catch (Exception) { ws.Abort(); } // closing anyway; the socket's state no longer matters
                ws.Dispose();
            }
        }

        public void Dispose() { CloseAsync().GetAwaiter().GetResult(); }

        async Task OpenAsync()
        {
            var ws = new ClientWebSocket();
            using (var connecting = CancellationTokenSource.CreateLinkedTokenSource(lifetime.Token))
            {
                connecting.CancelAfter(options.ConnectTimeout);
                await ws.ConnectAsync(options.Url, connecting.Token).ConfigureAwait(false);
            }
            lock (sync)
            {
                if (state == ConnectionState.Closed)
                {
                    ws.Abort();
                    throw new ConnectionException(ClientErrorCodes.NotConnected, "the client was closed");
                }
                socket = ws;
            }
            var loop = ReceiveLoop(ws); // runs on its own; ends in Dropped()
            try
            {
                if (!await ResumeAsync(ws).ConfigureAwait(false)) await BindAsync(ws).ConfigureAwait(false);
                Flush(ws);
            }
            catch (Exception)
            {
                lock (sync) if (socket == ws) socket = null; // this attempt failed: its caller retries or reports
                ws.Abort();
                throw;
            }
            RaiseState(ConnectionState.Connected);
            GC.KeepAlive(loop);
        }

        /// <summary>The first request on a new connection while the session is resumable: session.resume. True
        /// when the session was resumed; false when there was none to resume or the server refused (then the
        /// calls in flight fail as lost). Throws when the connection fails meanwhile: the calls stay kept.</summary>
        async Task<bool> ResumeAsync(ClientWebSocket ws)
        {
            ResumeGrant grant;
            long received;
            lock (sync)
            {
                grant = resume.Grant;
                received = resume.Received;
            }
            if (grant == null) return false;
            object data;
            try
            {
                data = await Internal(ws, "session.resume",
                    new Dictionary<string, object> { { "token", grant.Token }, { "received", received } }).ConfigureAwait(false);
            }
            catch (ServerErrorException e)
            {
                var reason = e.Code == "resume_failed" ? ResumeState.FailureReason(e.Detail) : e.Code;
                List<Pending> lost;
                lock (sync)
                {
                    resume.Forget();
                    uid = null; // this connection is bound to no one until the re-bind
                    lost = new List<Pending>(pending.Values);
                    pending.Clear();
                }
                foreach (var p in lost)
                    p.Fail(new ConnectionException(ClientErrorCodes.ConnectionLost,
                        p.Fn + ": the connection dropped and the session could not be resumed (" + reason + ")", e));
                dispatcher.Post(() => { var h = ResumeFailed; if (h != null) h(reason, e); });
                return false;
            }
            var replayed = Wire.Field(data, "replayed");
            var count = replayed == null ? 0 : Wire.Int(replayed);
            lock (sync)
            {
                resume.Renew(ResumeGrant.FromReply(data) ?? grant);
                uid = Wire.Int(Wire.Field(data, "uid"));
            }
            dispatcher.Post(() => { var h = Resumed; if (h != null) h(count); });
            return true;
        }

        async Task BindAsync(ClientWebSocket ws)
        {
            var token = auth == null ? null : auth.Token;
            if (token == null) return;
            try
            {
                var data = await Internal(ws, "session.bind", new Dictionary<string, object> { { "token", token } }).ConfigureAwait(false);
                lock (sync) uid = Wire.Int(Wire.Field(data, "uid"));
            }
            catch (ServerErrorException e)
            {
                lock (sync) uid = null;
                dispatcher.Post(() => { var h = BindFailed; if (h != null) h(e); });
            }
        }

        void Flush(ClientWebSocket ws)
        {
            List<Pending> flush;
            lock (sync)
            {
                if (socket != ws) throw new ConnectionException(ClientErrorCodes.ConnectionLost, "dropped while connecting");
                state = ConnectionState.Connected;
                flush = new List<Pending>(queued);
                queued.Clear();
                foreach (var p in flush) pending[p.Id] = p;
            }
            foreach (var p in flush) Send(ws, p);
            ScheduleAck();
        }

        /// <summary>A request of the client's own (bind, resume, ack) straight on <paramref name="ws"/>, ahead
        /// of the queue; never kept for a resume.</summary>
        Task<object> Internal(ClientWebSocket ws, string fn, IDictionary<string, object> args)
        {
            var p = new Pending(Interlocked.Increment(ref nextId), fn, args, null) { Internal = true };
            lock (sync)
            {
                AskResume(p);
                pending[p.Id] = p;
            }
            StartTimer(p, options.Timeout);
            Send(ws, p);
            return p.Task;
        }

        /// <summary>Adds <c>"resume": true</c> to a login, register or bind that does not say (call under the lock).</summary>
        void AskResume(Pending p)
        {
            if (!resumeWanted || !ResumeState.Functions.Contains(p.Fn) || p.Args.ContainsKey("resume")) return;
            p.Args = new Dictionary<string, object>(p.Args) { { "resume", true } };
            p.AddedResume = true;
        }

        /// <summary>Sends session.ack once Received has grown by a quarter of the server's buffer, at most once a
        /// second (docs/PROTOCOL.md, "Resume").</summary>
        void ScheduleAck()
        {
            lock (sync)
            {
                if (ackTimer != null || state != ConnectionState.Connected) return;
                var delay = resume.AckDelay(Clock.ElapsedMilliseconds);
                if (!delay.HasValue) return;
                ackTimer = new Timer(_ => SendAck(), null, delay.Value, Timeout.Infinite);
            }
        }

        void SendAck()
        {
            ClientWebSocket ws;
            long received;
            lock (sync)
            {
                StopAckTimer();
                ws = socket;
                if (ws == null || state != ConnectionState.Connected || !resume.AckDelay(Clock.ElapsedMilliseconds).HasValue) return;
                received = resume.Ack(Clock.ElapsedMilliseconds);
            }
            // Its reply is not needed: a lost ack is covered by the next one.
            Internal(ws, "session.ack", new Dictionary<string, object> { { "received", received } })
                .ContinueWith(t => { var ignored = t.Exception; }, TaskContinuationOptions.OnlyOnFaulted);
        }

        void StopAckTimer()
        {
            if (ackTimer != null) ackTimer.Dispose();
            ackTimer = null;
        }

        async Task ReceiveLoop(ClientWebSocket ws)
        {
            var buffer = new byte[ReceiveChunk];
            var message = new MemoryStream();
            Exception error = null;
            try
            {
                while (true)
                {
                    message.SetLength(0);
                    WebSocketReceiveResult result;
                    do
                    {
                        result = await ws.ReceiveAsync(new ArraySegment<byte>(buffer), CancellationToken.None).ConfigureAwait(false);
                        if (result.MessageType == WebSocketMessageType.Close) break;
                        message.Write(buffer, 0, result.Count);
                    } while (!result.EndOfMessage);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        error = new ConnectionException(ClientErrorCodes.ConnectionLost,
                            "server closed: " + result.CloseStatus + " " + result.CloseStatusDescription);
                        try { await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None).ConfigureAwait(false); }
                        catch (Exception) { } // the peer may be gone already; the connection is over either way
                        break;
                    }
                    object decoded = result.MessageType == WebSocketMessageType.Binary
                        ? MsgPack.Unpack(message.GetBuffer(), 0, (int)message.Length)
                        : Json.Parse(Utf8.GetString(message.GetBuffer(), 0, (int)message.Length));
                    Handle(decoded, ws);
                }
            }
            catch (Exception e)
            {
                error = e;
            }
            Dropped(ws, error);
        }

        void Handle(object decoded, ClientWebSocket ws)
        {
            var map = decoded as IDictionary<string, object>;
            if (map == null) return; // the server only sends maps (PROTOCOL.md, "Gate")
            var seqValue = Wire.Field(map, "seq");
            long? seq = seqValue == null ? (long?)null : Wire.Int(seqValue);
            object idValue;
            if (map.TryGetValue("id", out idValue))
            {
                Pending p = null;
                object ok;
                var succeeded = map.TryGetValue("ok", out ok) && ok is bool && (bool)ok;
                var data = succeeded ? Wire.Field(map, "data") : null;
                var error = succeeded ? null : Wire.Field(map, "error") as IDictionary<string, object>;
                var code = error == null ? ClientErrorCodes.Protocol : Wire.Field(error, "code") as string ?? ClientErrorCodes.Protocol;
                var message = error == null ? "reply without error" : Wire.Field(error, "message") as string ?? "";
                bool again;
                lock (sync)
                {
                    if (idValue is long) pending.TryGetValue((long)idValue, out p);
                    var grant = p != null && succeeded && ResumeState.Functions.Contains(p.Fn) ? ResumeGrant.FromReply(data) : null;
                    if (grant != null) resume.Start(grant, seq); // a new resumable session, numbered from this reply
                    else if (!resume.Accept(seq)) return; // received before: a resume never delivers a message twice
                    if (p == null) return; // id null (an envelope the server could not read), or timed out already
                    // A server older than resume refuses the argument: ask it again without, and not again.
                    again = !succeeded && p.AddedResume && code == "bad_request" && message.Contains("resume");
                    if (again)
                    {
                        resumeWanted = false;
                        var args = new Dictionary<string, object>(p.Args);
                        args.Remove("resume");
                        p.Args = args;
                        p.AddedResume = false;
                    }
                    else pending.Remove(p.Id);
                }
                ScheduleAck();
                if (again) Send(ws, p);
                else if (succeeded)
                {
                    Learn(p.Fn, data);
                    p.Complete(data);
                }
                else p.Fail(new ServerErrorException(p.Fn, code, message));
                return;
            }
            lock (sync) if (!resume.Accept(seq)) return;
            ScheduleAck();
            var name = Wire.Field(map, "event") as string;
            if (name == null) return;
            var push = new PushEvent(name, Wire.Field(map, "data"));
            dispatcher.Post(() => RaisePush(push));
        }

        // A gate login binds the connection and hands out a token (docs/auth.md): keep it for reconnects.
        void Learn(string fn, object data)
        {
            if (fn == "auth.logout") // every token of the player is revoked and this connection unbound (docs/auth.md)
            {
                lock (sync)
                {
                    uid = null;
                    resume.Forget();
                }
                if (auth != null) auth.Forget();
                return;
            }
            if (fn != "auth.login" && fn != "auth.register" && fn != "auth.refresh" && fn != "session.bind") return;
            if (ResumeState.Functions.Contains(fn) && ResumeGrant.FromReply(data) == null)
                lock (sync) resume.Forget(); // a new session that is not resumable
            var map = data as IDictionary<string, object>;
            if (map == null) return;
            object u;
            if (!map.TryGetValue("uid", out u) || !(u is long)) return;
            lock (sync) uid = (long)u;
            object token;
            if (auth != null && map.TryGetValue("token", out token) && token is string)
                auth.UseToken((string)token, (long)u);
        }

        void RaisePush(PushEvent push)
        {
            var all = Pushed;
            if (all != null) all(push);
            Action<object>[] those = null;
            lock (sync)
            {
                List<Action<object>> list;
                if (handlers.TryGetValue(push.Event, out list)) those = list.ToArray();
            }
            if (those != null) foreach (var h in those) h(push.Data);
        }

        void Dropped(ClientWebSocket ws, Exception error)
        {
            List<Pending> failed;
            bool reconnect;
            lock (sync)
            {
                if (socket != ws) { ws.Dispose(); return; } // closed by CloseAsync, or replaced already
                socket = null;
                StopAckTimer();
                // Only a drop of an established connection starts the loop; one during a (re)connect is
                // that attempt's failure, which its own caller handles.
                reconnect = state == ConnectionState.Connected && options.Reconnect;
                if (state == ConnectionState.Connected) state = reconnect ? ConnectionState.Reconnecting : ConnectionState.Disconnected;
                // While reconnecting, a resumable session keeps the replies of the calls in flight for the next
                // connection (also when this was a reconnect attempt that failed).
                var keep = state == ConnectionState.Reconnecting && resume.Grant != null;
                failed = new List<Pending>();
                foreach (var p in pending.Values) if (!keep || p.Internal) failed.Add(p);
                foreach (var p in failed) pending.Remove(p.Id);
                if (!reconnect && state == ConnectionState.Disconnected)
                {
                    failed.AddRange(queued);
                    queued.Clear();
                }
            }
            ws.Dispose();
            foreach (var p in failed)
                p.Fail(new ConnectionException(ClientErrorCodes.ConnectionLost, p.Fn + ": the connection dropped before the reply", error));
            var now = State;
            RaiseState(now);
            if (reconnect) Task.Run(ReconnectLoop);
        }

        async Task ReconnectLoop()
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await Task.Delay(options.Backoff.Delay(attempt), lifetime.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return; // closed
                }
                try
                {
                    await OpenAsync().ConfigureAwait(false);
                    dispatcher.Post(() => { var h = Reconnected; if (h != null) h(); });
                    return;
                }
                catch (Exception)
                {
                    if (State == ConnectionState.Closed) return;
                    if (options.Backoff.MaxAttempts > 0 && attempt >= options.Backoff.MaxAttempts)
                    {
                        GiveUp();
                        return;
                    }
                }
            }
        }

        void GiveUp()
        {
            List<Pending> failed;
            lock (sync)
            {
                state = ConnectionState.Disconnected;
                failed = new List<Pending>(queued);
                failed.AddRange(pending.Values); // kept for a resume that did not come
                queued.Clear();
                pending.Clear();
                resume.Forget();
            }
            foreach (var p in failed) p.Fail(new ConnectionException(ClientErrorCodes.NotConnected, p.Fn + ": reconnecting failed"));
            RaiseState(ConnectionState.Disconnected);
        }

        void StartTimer(Pending p, TimeSpan timeout)
        {
            p.Timer = new CancellationTokenSource(timeout);
            if (p.Task.IsCompleted) p.Timer.Dispose(); // answered before its timer was made
            else p.Timer.Token.Register(() =>
            {
                lock (sync)
                {
                    pending.Remove(p.Id);
                    queued.Remove(p);
                }
                p.Fail(new CallTimeoutException(p.Fn, timeout));
            });
        }

        async void Send(ClientWebSocket ws, Pending p)
        {
            var request = new Dictionary<string, object> { { "id", p.Id }, { "fn", p.Fn }, { "args", p.Args } };
            if (p.Token != null) request["token"] = p.Token;
            try
            {
                byte[] bytes;
                WebSocketMessageType type;
                if (options.Encoding == WireEncoding.MsgPack) { bytes = MsgPack.Pack(request); type = WebSocketMessageType.Binary; }
                else { bytes = Utf8.GetBytes(Json.Serialize(request)); type = WebSocketMessageType.Text; }
                await sendLock.WaitAsync().ConfigureAwait(false);
                try
                {
                    await ws.SendAsync(new ArraySegment<byte>(bytes), type, true, CancellationToken.None).ConfigureAwait(false);
                }
                finally
                {
                    sendLock.Release();
                }
            }
            catch (Exception e)
            {
                lock (sync) pending.Remove(p.Id);
                var code = e is ArgumentException ? ClientErrorCodes.Protocol : ClientErrorCodes.ConnectionLost;
                p.Fail(new ConnectionException(code, p.Fn + ": not sent: " + e.Message, e));
            }
        }

        void RaiseState(ConnectionState now)
        {
            dispatcher.Post(() => { var h = StateChanged; if (h != null) h(now); });
        }

        static Task<object> Failed(Exception e)
        {
            var tcs = new TaskCompletionSource<object>();
            tcs.SetException(e);
            return tcs.Task;
        }

        sealed class Pending
        {
            public readonly long Id;
            public readonly string Fn;
            public IDictionary<string, object> Args;
            public readonly string Token;
            public CancellationTokenSource Timer;
            /// <summary>The client's own request (bind, resume, ack): never kept for a resume.</summary>
            public bool Internal;
            /// <summary>The client added <c>"resume": true</c>: taken out if the server does not know it.</summary>
            public bool AddedResume;
            readonly TaskCompletionSource<object> tcs =
                new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);

            public Pending(long id, string fn, IDictionary<string, object> args, string token)
            {
                Id = id;
                Fn = fn;
                Args = args;
                Token = token;
            }

            public Task<object> Task { get { return tcs.Task; } }

            public void Complete(object data)
            {
                if (tcs.TrySetResult(data)) DisposeTimer();
            }

            public void Fail(Exception e)
            {
                if (tcs.TrySetException(e)) DisposeTimer();
            }

            void DisposeTimer()
            {
                var t = Timer;
                if (t != null) t.Dispose();
            }
        }
    }
}
