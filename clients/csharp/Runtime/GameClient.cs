// The gate over WebSocket (docs/PROTOCOL.md, "Gate: request / response"): requests matched to replies by id,
// pushes as events, session.bind after every (re)connect, automatic reconnect with backoff and jitter.
using System;
using System.Collections.Generic;
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

        /// <summary>The connection's state changed (dispatched).</summary>
        public event Action<ConnectionState> StateChanged;
        /// <summary>Every server push (dispatched); <see cref="On"/> subscribes to one event name.</summary>
        public event Action<PushEvent> Pushed;
        /// <summary>The connection is back after a drop, and re-bound when there is a token (dispatched).</summary>
        public event Action Reconnected;
        /// <summary>session.bind after a (re)connect was refused, e.g. <c>unauthorized</c> for a revoked or
        /// expired token: log in again (dispatched).</summary>
        public event Action<GameServerException> BindFailed;

        /// <param name="options">the gate URL and the client's behaviour</param>
        /// <param name="auth">where the token comes from: bound after every connect; <c>auth.login</c>,
        /// <c>auth.register</c> and <c>auth.refresh</c> made on this client update its token. May be null.</param>
        public GameClient(ClientOptions options, AuthClient auth = null)
        {
            if (options == null) throw new ArgumentNullException("options");
            this.options = options;
            this.auth = auth;
            dispatcher = new Dispatcher(options.Callbacks);
        }

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
                await BindAndFlush(ws).ConfigureAwait(false);
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

        async Task BindAndFlush(ClientWebSocket ws)
        {
            var token = auth == null ? null : auth.Token;
            if (token != null)
            {
                var bind = new Pending(Interlocked.Increment(ref nextId), "session.bind",
                    new Dictionary<string, object> { { "token", token } }, null);
                lock (sync) pending[bind.Id] = bind;
                StartTimer(bind, options.Timeout);
                Send(ws, bind);
                try
                {
                    var data = await bind.Task.ConfigureAwait(false);
                    lock (sync) uid = Wire.Int(Wire.Field(data, "uid"));
                }
                catch (ServerErrorException e)
                {
                    lock (sync) uid = null;
                    dispatcher.Post(() => { var h = BindFailed; if (h != null) h(e); });
                }
            }
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
                    Handle(decoded);
                }
            }
            catch (Exception e)
            {
                error = e;
            }
            Dropped(ws, error);
        }

        void Handle(object decoded)
        {
            var map = decoded as IDictionary<string, object>;
            if (map == null) return; // the server only sends maps (PROTOCOL.md, "Gate")
            object idValue;
            if (map.TryGetValue("id", out idValue))
            {
                if (!(idValue is long)) return; // id null: an envelope the server could not read; no call to complete
                Pending p;
                lock (sync)
                {
                    if (!pending.TryGetValue((long)idValue, out p)) return; // timed out already
                    pending.Remove(p.Id);
                }
                object ok;
                if (map.TryGetValue("ok", out ok) && ok is bool && (bool)ok)
                {
                    var data = Wire.Field(map, "data");
                    Learn(p.Fn, data);
                    p.Complete(data);
                }
                else
                {
                    var error = Wire.Field(map, "error") as IDictionary<string, object>;
                    var code = error == null ? ClientErrorCodes.Protocol : Wire.Field(error, "code") as string;
                    var message = error == null ? "reply without error" : Wire.Field(error, "message") as string;
                    p.Fail(new ServerErrorException(p.Fn, code ?? ClientErrorCodes.Protocol, message ?? ""));
                }
                return;
            }
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
                lock (sync) uid = null;
                if (auth != null) auth.Forget();
                return;
            }
            if (fn != "auth.login" && fn != "auth.register" && fn != "auth.refresh" && fn != "session.bind") return;
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
                failed = new List<Pending>(pending.Values);
                pending.Clear();
                // Only a drop of an established connection starts the loop; one during a (re)connect is
                // that attempt's failure, which its own caller handles.
                reconnect = state == ConnectionState.Connected && options.Reconnect;
                if (state == ConnectionState.Connected) state = reconnect ? ConnectionState.Reconnecting : ConnectionState.Disconnected;
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
                queued.Clear();
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
            public readonly IDictionary<string, object> Args;
            public readonly string Token;
            public CancellationTokenSource Timer;
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
