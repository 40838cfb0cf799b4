using System;

namespace GameServer.Client
{
    /// <summary>The gate's two encodings (docs/PROTOCOL.md, "Listeners"): msgpack in binary frames, JSON in
    /// text frames. Pushes come in the encoding of the connection's latest request.</summary>
    public enum WireEncoding
    {
        MsgPack,
        Json,
    }

    /// <summary>What a call made while the client reconnects does.</summary>
    public enum WhileReconnecting
    {
        /// <summary>Wait, and go out once the connection is back and re-bound (its timeout still runs).</summary>
        Queue,
        /// <summary>Fail at once with a <see cref="ConnectionException"/> (code <c>not_connected</c>).</summary>
        Fail,
    }

    public enum ConnectionState
    {
        Disconnected,
        Connecting,
        Connected,
        Reconnecting,
        Closed,
    }

    /// <summary>Settings of a <see cref="GameClient"/>.</summary>
    public sealed class ClientOptions
    {
        /// <summary>The gate's WebSocket URL, e.g. <c>ws://127.0.0.1:8881/gate</c>.</summary>
        public Uri Url;
        public WireEncoding Encoding = WireEncoding.MsgPack;
        /// <summary>How long a WebSocket handshake may take.</summary>
        public TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
        /// <summary>A call's timeout unless its <see cref="CallOptions"/> say otherwise.</summary>
        public TimeSpan Timeout = TimeSpan.FromSeconds(10);
        /// <summary>Reconnect on its own after the connection drops (not after <see cref="GameClient.CloseAsync"/>).</summary>
        public bool Reconnect = true;
        public Backoff Backoff = new Backoff();
        public WhileReconnecting WhileReconnecting = WhileReconnecting.Queue;
        public CallbackMode Callbacks = CallbackMode.CallerContext;
        /// <summary>Ask for a resumable session on every login, register and bind (docs/PROTOCOL.md, "Resume"): a
        /// dropped connection is then resumed, replies and pushes sent meanwhile delivered once. A server without
        /// resume is detected (it refuses the argument) and not asked again.</summary>
        public bool Resume = true;

        public ClientOptions(string url) { Url = new Uri(url); }
    }

    /// <summary>Per-call settings; null fields take the client's.</summary>
    public sealed class CallOptions
    {
        public TimeSpan? Timeout;
        public WhileReconnecting? WhileReconnecting;
        /// <summary>Sent as the request's <c>token</c> (it wins over the connection's binding).</summary>
        public string Token;
    }
}
