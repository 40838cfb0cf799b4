// Errors as typed exceptions carrying the error code clients switch on (docs/PROTOCOL.md, "Error codes"; the
// generated ErrorCodes class lists every code of the shipped server).
using System;

namespace GameServer.Client
{
    /// <summary>Everything the SDK throws for a failed call, login or chat line: <see cref="Code"/> is the
    /// server's error code (<c>bad_request</c>, <c>family_not_found</c>, ...) or one of
    /// <see cref="ClientErrorCodes"/> for failures the client saw itself.</summary>
    public class GameServerException : Exception
    {
        public string Code { get; private set; }

        public GameServerException(string code, string message) : base(message) { Code = code; }

        public GameServerException(string code, string message, Exception inner) : base(message, inner) { Code = code; }
    }

    /// <summary>The server answered a request with an error reply:
    /// <c>{"id", "ok": false, "error": {"code", "message"}}</c>.</summary>
    public class ServerErrorException : GameServerException
    {
        /// <summary>The function that was called, e.g. <c>family.create</c>.</summary>
        public string Fn { get; private set; }

        public ServerErrorException(string fn, string code, string message) : base(code, message) { Fn = fn; Detail = message; }

        /// <summary>The server's own message (<see cref="Message"/> also names the function and the code).</summary>
        public string Detail { get; private set; }

        public override string Message { get { return Fn + ": " + Code + ": " + base.Message; } }
    }

    /// <summary>No reply within the call's timeout (<see cref="CallOptions.Timeout"/>). Code <c>timeout</c>,
    /// like the server's own deadline, so one switch handles both. The server may still run the call.</summary>
    public class CallTimeoutException : GameServerException
    {
        public CallTimeoutException(string fn, TimeSpan timeout)
            : base(ClientErrorCodes.Timeout, fn + ": no reply within " + timeout.TotalSeconds + " s") { }
    }

    /// <summary>The connection was down: a call made while reconnecting with
    /// <see cref="WhileReconnecting.Fail"/>, a call on a closed client (<c>not_connected</c>), or a call
    /// whose connection dropped after it was sent and before its reply came (<c>connection_lost</c>; the
    /// server may or may not have run it).</summary>
    public class ConnectionException : GameServerException
    {
        public ConnectionException(string code, string message) : base(code, message) { }

        public ConnectionException(string code, string message, Exception inner) : base(code, message, inner) { }
    }

    /// <summary>An HTTP route (<c>/auth/*</c>) answered an error: <c>{"error": {"code", "message"}}</c>.</summary>
    public class HttpErrorException : GameServerException
    {
        public int Status { get; private set; }

        public HttpErrorException(int status, string code, string message) : base(code, message) { Status = status; }
    }

    /// <summary>Codes of failures the client detects itself (the server's codes are in the generated
    /// ErrorCodes).</summary>
    public static class ClientErrorCodes
    {
        public const string Timeout = "timeout";
        public const string NotConnected = "not_connected";
        public const string ConnectionLost = "connection_lost";
        /// <summary>The server sent something this SDK cannot read, or closed a chat login.</summary>
        public const string Protocol = "protocol";
    }
}
