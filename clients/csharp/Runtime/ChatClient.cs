// The chat edge over WebSocket `/chat` (docs/PROTOCOL.md, "Chat edge"; docs/chat.md): one text frame = one
// line = a 10-byte command field + payload. LOGIN with a single-use nonce, then PUBLIC / FAMILY lines; a new
// nonce for every reconnect. The server has no JOIN: after LOGIN a player is in their world's public channel and
// their family's. HistoryAsync asks for a channel's last messages ("Chat history"); SendLineAsync sends any
// command a newer server adds.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace GameServer.Client
{
    /// <summary>Settings of a <see cref="ChatClient"/>.</summary>
    public sealed class ChatOptions
    {
        /// <summary>The chat edge's WebSocket URL, e.g. <c>ws://127.0.0.1:8881/chat</c>.</summary>
        public Uri Url;
        /// <summary>How long a WebSocket handshake may take.</summary>
        public TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
        /// <summary>How long to wait for LOGIN's answer.</summary>
        public TimeSpan LoginTimeout = TimeSpan.FromSeconds(10);
        /// <summary>How long <see cref="ChatClient.HistoryAsync"/> waits for its <c>HISTORY</c> line.</summary>
        public TimeSpan Timeout = TimeSpan.FromSeconds(10);
        /// <summary>A PING this often keeps the connection inside the server's <c>chat.idle_timeout</c> (300 s).</summary>
        public TimeSpan PingInterval = TimeSpan.FromSeconds(60);
        /// <summary>The server's <c>chat.max_line</c>: longer lines are refused here, before the server would
        /// close the connection for them.</summary>
        public int MaxLine = 4096;
        public bool Reconnect = true;
        public Backoff Backoff = new Backoff();
        public CallbackMode Callbacks = CallbackMode.CallerContext;

        public ChatOptions(string url) { Url = new Uri(url); }
    }

    /// <summary>One chat edge connection: typed events for messages and errors, reconnect with a fresh nonce.</summary>
    public sealed class ChatClient : IDisposable
    {
        const int CommandField = 10;
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false, true);
        // The ERROR codes that answer a HISTORY request (a bad channel or count; the history store down): a line
        // said on a channel is refused with others (not_in_family, rate_limited, muted, ...).
        static readonly string[] HistoryErrors = { "bad_request", "unavailable" };

        sealed class HistoryWaiter
        {
            public ChatChannel Channel;
            public TaskCompletionSource<ChannelHistory> Answer;
        }

        readonly ChatOptions options;
        readonly Func<Task<string>> nonceSource;
        readonly Dispatcher dispatcher;
        readonly object sync = new object();
        readonly SemaphoreSlim sendLock = new SemaphoreSlim(1, 1);
        readonly CancellationTokenSource lifetime = new CancellationTokenSource();
        ClientWebSocket socket;
        ConnectionState state = ConnectionState.Disconnected;
        TaskCompletionSource<ChatIdentity> login;
        ChatIdentity identity;
        Timer pinger;
        readonly List<HistoryWaiter> histories = new List<HistoryWaiter>();

        /// <summary>A <c>PUBLIC</c> or <c>FAMILY</c> message (dispatched).</summary>
        public event Action<ChatMessage> Message;
        /// <summary>An <c>ERROR</c> line: <c>not_in_family</c>, <c>rate_limited</c>, <c>unavailable</c>,
        /// <c>unauthorized</c> (sessions revoked; the server closes) (dispatched).</summary>
        public event Action<GameServerException> Error;
        /// <summary>A <c>HISTORY</c> line nobody asked for: the server's catch-up after each login
        /// (<c>chat.history_on_join</c> above 0) (dispatched).</summary>
        public event Action<ChannelHistory> History;
        /// <summary>Any other line, command and payload, for commands a newer server adds (dispatched).</summary>
        public event Action<string, string> Line;
        public event Action<ConnectionState> StateChanged;
        /// <summary>Logged in again after a drop, with a new nonce (dispatched).</summary>
        public event Action<ChatIdentity> Reconnected;

        /// <param name="nonceSource">gets a fresh nonce for each (re)connect, e.g. from an AuthClient</param>
        public ChatClient(ChatOptions options, Func<Task<string>> nonceSource)
        {
            if (options == null) throw new ArgumentNullException("options");
            if (nonceSource == null) throw new ArgumentNullException("nonceSource");
            this.options = options;
            this.nonceSource = nonceSource;
            dispatcher = new Dispatcher(options.Callbacks);
        }

        /// <summary>Nonces from <c>POST /auth/nonce</c> with the AuthClient's token.</summary>
        public ChatClient(ChatOptions options, AuthClient auth)
            : this(options, async () => (await auth.NonceAsync().ConfigureAwait(false)).Value) { }

        public ConnectionState State { get { lock (sync) return state; } }
        public ChatIdentity Identity { get { lock (sync) return identity; } }
        public Dispatcher Dispatcher { get { return dispatcher; } }

        public int Update() { return dispatcher.Update(); }

        /// <summary>Connects and logs in; the identity the server answered with. Throws GameServerException
        /// (<c>protocol</c> when the server closed the login, e.g. a used nonce; <c>unavailable</c>).</summary>
        public async Task<ChatIdentity> ConnectAsync()
        {
            lock (sync)
            {
                if (state != ConnectionState.Disconnected) throw new InvalidOperationException("already " + state);
                state = ConnectionState.Connecting;
            }
            RaiseState(ConnectionState.Connecting);
            try
            {
                return await OpenAsync().ConfigureAwait(false);
            }
            catch (Exception)
            {
                lock (sync) if (state == ConnectionState.Connecting) state = ConnectionState.Disconnected;
                RaiseState(ConnectionState.Disconnected);
                throw;
            }
        }

        /// <summary>SAY: <paramref name="text"/> to the channel. Fire and forget, as the server's chat is: the
        /// message comes back as a <see cref="Message"/>, a refusal as an <see cref="Error"/>.</summary>
        public Task SayAsync(ChatChannel channel, string text)
        {
            return SendLineAsync(channel == ChatChannel.Public ? "PUBLIC" : "FAMILY", text);
        }

        public Task PingAsync() { return SendLineAsync("PING", ""); }

        /// <summary>The last <paramref name="count"/> messages of a channel, oldest first (docs/PROTOCOL.md, "Chat
        /// history"; null: the server's <c>chat.history_on_join</c>, or all it keeps). Answered by the server's next
        /// <c>HISTORY</c> line for that channel: right after a login that may be its unasked catch-up line, which
        /// answers as well. Throws GameServerException <c>bad_request</c> (<c>Family</c> outside a family) or
        /// <c>unavailable</c>, CallTimeoutException (no answer within <paramref name="timeout"/>, default
        /// <see cref="ChatOptions.Timeout"/>), ConnectionException (not logged in: <c>not_connected</c>; the
        /// connection dropped first: <c>connection_lost</c>).</summary>
        public async Task<ChannelHistory> HistoryAsync(ChatChannel channel, int? count = null, TimeSpan? timeout = null)
        {
            if (count < 0) throw new ArgumentOutOfRangeException("count", "count must be 0 or more");
            var name = channel == ChatChannel.Public ? "public" : "family";
            var waiter = new HistoryWaiter
            {
                Channel = channel,
                Answer = new TaskCompletionSource<ChannelHistory>(TaskCreationOptions.RunContinuationsAsynchronously),
            };
            lock (sync) histories.Add(waiter);
            try
            {
                await SendLineAsync("HISTORY", count.HasValue ? name + " " + count.Value : name).ConfigureAwait(false);
                var wait = timeout ?? options.Timeout;
                using (var timer = new CancellationTokenSource(wait))
                using (timer.Token.Register(() => waiter.Answer.TrySetException(new CallTimeoutException("chat HISTORY " + name, wait))))
                    return await waiter.Answer.Task.ConfigureAwait(false);
            }
            finally
            {
                lock (sync) histories.Remove(waiter);
            }
        }

        /// <summary>Sends one line: the command padded to its 10-byte field, then the payload. Throws
        /// ArgumentException for what the server would close the connection for (a CR or LF, a line over
        /// <see cref="ChatOptions.MaxLine"/>), ConnectionException when not logged in.</summary>
        public async Task SendLineAsync(string command, string payload)
        {
            if (command.Length == 0 || command.Length > CommandField) throw new ArgumentException("command must be 1-10 characters");
            if (payload.IndexOf('\r') >= 0 || payload.IndexOf('\n') >= 0) throw new ArgumentException("a chat line holds no CR or LF");
            var bytes = Utf8.GetBytes(command.ToUpperInvariant().PadRight(CommandField) + payload);
            if (bytes.Length > options.MaxLine) throw new ArgumentException("line of " + bytes.Length + " bytes, over " + options.MaxLine);
            ClientWebSocket ws;
            lock (sync)
            {
                if (state != ConnectionState.Connected) throw new ConnectionException(ClientErrorCodes.NotConnected, "chat is " + state);
                ws = socket;
            }
            await SendAsync(ws, bytes).ConfigureAwait(false);
        }

        public async Task CloseAsync()
        {
            ClientWebSocket ws;
            lock (sync)
            {
                if (state == ConnectionState.Closed) return;
                state = ConnectionState.Closed;
                ws = socket;
                socket = null;
                if (pinger != null) pinger.Dispose();
                pinger = null;
            }
            FailHistories(new ConnectionException(ClientErrorCodes.NotConnected, "the chat client was closed"));
            lifetime.Cancel();
            RaiseState(ConnectionState.Closed);
            if (ws != null)
            {
                try
                {
                    using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
                        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", cts.Token).ConfigureAwait(false);
                }
                catch (Exception) { ws.Abort(); } // closing anyway
                ws.Dispose();
            }
        }

        public void Dispose() { CloseAsync().GetAwaiter().GetResult(); }

        async Task<ChatIdentity> OpenAsync()
        {
            var nonce = await nonceSource().ConfigureAwait(false);
            var ws = new ClientWebSocket();
            using (var connecting = CancellationTokenSource.CreateLinkedTokenSource(lifetime.Token))
            {
                connecting.CancelAfter(options.ConnectTimeout);
                await ws.ConnectAsync(options.Url, connecting.Token).ConfigureAwait(false);
            }
            var answer = new TaskCompletionSource<ChatIdentity>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (sync)
            {
                if (state == ConnectionState.Closed)
                {
                    ws.Abort();
                    throw new ConnectionException(ClientErrorCodes.NotConnected, "the chat client was closed");
                }
                socket = ws;
                login = answer;
            }
            var loop = ReceiveLoop(ws);
            try
            {
                await SendAsync(ws, Utf8.GetBytes("LOGIN".PadRight(CommandField) + nonce)).ConfigureAwait(false);
                using (var timeout = new CancellationTokenSource(options.LoginTimeout))
                using (timeout.Token.Register(() => answer.TrySetException(
                           new CallTimeoutException("chat LOGIN", options.LoginTimeout))))
                {
                    var who = await answer.Task.ConfigureAwait(false);
                    lock (sync)
                    {
                        if (socket != ws) throw new ConnectionException(ClientErrorCodes.ConnectionLost, "dropped while logging in");
                        identity = who;
                        state = ConnectionState.Connected;
                        if (pinger != null) pinger.Dispose();
                        pinger = new Timer(_ => Ping(ws), null, options.PingInterval, options.PingInterval);
                    }
                    RaiseState(ConnectionState.Connected);
                    GC.KeepAlive(loop);
                    return who;
                }
            }
            catch (Exception)
            {
                lock (sync) if (socket == ws) socket = null;
                ws.Abort();
                throw;
            }
        }

        async void Ping(ClientWebSocket ws)
        {
            try
            {
                await SendAsync(ws, Utf8.GetBytes("PING".PadRight(CommandField))).ConfigureAwait(false);
            }
            catch (Exception) { } // a dead connection is noticed (and reconnected) by its receive loop
        }

        async Task SendAsync(ClientWebSocket ws, byte[] line)
        {
            await sendLock.WaitAsync().ConfigureAwait(false);
            try
            {
                await ws.SendAsync(new ArraySegment<byte>(line), WebSocketMessageType.Text, true, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                throw new ConnectionException(ClientErrorCodes.ConnectionLost, "chat line not sent: " + e.Message, e);
            }
            finally
            {
                sendLock.Release();
            }
        }

        async Task ReceiveLoop(ClientWebSocket ws)
        {
            var buffer = new byte[8192];
            var message = new MemoryStream();
            string why = "closed";
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
                        why = "server closed: " + (int?)result.CloseStatus + " " + result.CloseStatusDescription;
                        try { await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None).ConfigureAwait(false); }
                        catch (Exception) { } // over either way
                        break;
                    }
                    HandleLine(Utf8.GetString(message.GetBuffer(), 0, (int)message.Length));
                }
            }
            catch (Exception e)
            {
                why = e.Message;
            }
            Dropped(ws, why);
        }

        void HandleLine(string line)
        {
            var command = (line.Length < CommandField ? line : line.Substring(0, CommandField)).TrimEnd();
            var payload = line.Length > CommandField ? line.Substring(CommandField) : "";
            TaskCompletionSource<ChatIdentity> waiting;
            lock (sync) waiting = login;
            if (command == "OK" && waiting != null && !waiting.Task.IsCompleted)
            {
                var who = Json.Parse(payload);
                waiting.TrySetResult(new ChatIdentity(Wire.Int(Wire.Field(who, "uid")), Wire.Str(Wire.Field(who, "name")),
                    Wire.Int(Wire.Field(who, "world")), Wire.Nullable(Wire.Field(who, "family"), Wire.Int)));
                return;
            }
            if (command == "PUBLIC" || command == "FAMILY")
            {
                var msg = ChatMessage.FromWire(command == "PUBLIC" ? ChatChannel.Public : ChatChannel.Family, Json.Parse(payload));
                dispatcher.Post(() => { var h = Message; if (h != null) h(msg); });
                return;
            }
            if (command == "HISTORY")
            {
                var history = ChannelHistory.Parse(payload);
                var asked = TakeHistoryWaiter(w => w.Channel == history.Channel);
                if (asked != null) asked.Answer.TrySetResult(history);
                else dispatcher.Post(() => { var h = History; if (h != null) h(history); });
                return;
            }
            if (command == "ERROR")
            {
                var code = payload.Trim();
                var error = new GameServerException(code, "chat: " + code);
                if (waiting != null && !waiting.Task.IsCompleted) waiting.TrySetException(error); // unavailable during LOGIN
                var asked = Array.IndexOf(HistoryErrors, code) >= 0 ? TakeHistoryWaiter(w => true) : null;
                if (asked != null) asked.Answer.TrySetException(error);
                else dispatcher.Post(() => { var h = Error; if (h != null) h(error); });
                return;
            }
            if (command == "PONG") return;
            dispatcher.Post(() => { var h = Line; if (h != null) h(command, payload); });
        }

        /// <summary>The oldest unanswered HistoryAsync that <paramref name="matches"/>, taken off the list.</summary>
        HistoryWaiter TakeHistoryWaiter(Predicate<HistoryWaiter> matches)
        {
            lock (sync)
            {
                var index = histories.FindIndex(w => !w.Answer.Task.IsCompleted && matches(w));
                if (index < 0) return null;
                var waiter = histories[index];
                histories.RemoveAt(index);
                return waiter;
            }
        }

        void FailHistories(Exception error)
        {
            HistoryWaiter[] waiters;
            lock (sync)
            {
                waiters = histories.ToArray();
                histories.Clear();
            }
            foreach (var waiter in waiters) waiter.Answer.TrySetException(error);
        }

        void Dropped(ClientWebSocket ws, string why)
        {
            bool reconnect;
            TaskCompletionSource<ChatIdentity> waiting;
            lock (sync)
            {
                waiting = login;
                if (socket != ws) { ws.Dispose(); return; }
                socket = null;
                if (pinger != null) pinger.Dispose();
                pinger = null;
                reconnect = state == ConnectionState.Connected && options.Reconnect;
                if (state == ConnectionState.Connected) state = reconnect ? ConnectionState.Reconnecting : ConnectionState.Disconnected;
            }
            ws.Dispose();
            if (waiting != null) waiting.TrySetException(new GameServerException(ClientErrorCodes.Protocol, "chat LOGIN refused: " + why));
            FailHistories(new ConnectionException(ClientErrorCodes.ConnectionLost, "chat dropped before the answer: " + why));
            RaiseState(State);
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
                    return;
                }
                try
                {
                    var who = await OpenAsync().ConfigureAwait(false);
                    dispatcher.Post(() => { var h = Reconnected; if (h != null) h(who); });
                    return;
                }
                catch (Exception e)
                {
                    if (State == ConnectionState.Closed) return;
                    var refused = e as GameServerException;
                    // No nonce for a revoked or logged-out player: retrying cannot help.
                    var hopeless = refused != null && refused.Code == "unauthorized";
                    if (hopeless || (options.Backoff.MaxAttempts > 0 && attempt >= options.Backoff.MaxAttempts))
                    {
                        lock (sync) if (state == ConnectionState.Reconnecting) state = ConnectionState.Disconnected;
                        if (refused != null) dispatcher.Post(() => { var h = Error; if (h != null) h(refused); });
                        RaiseState(ConnectionState.Disconnected);
                        return;
                    }
                }
            }
        }

        void RaiseState(ConnectionState now)
        {
            dispatcher.Post(() => { var h = StateChanged; if (h != null) h(now); });
        }
    }
}
