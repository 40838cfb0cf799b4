// Accounts over HTTP (docs/PROTOCOL.md, "HTTP"; docs/auth.md): register, login, refresh, nonce, logout. The
// token is kept here, refreshed before it expires, and read by GameClient (session.bind) and ChatClient (nonce).
using System;
using System.Collections.Generic;
using System.Net.Http;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace GameServer.Client
{
    /// <summary>What register, login and refresh answer: <c>{"uid", "token"}</c>.</summary>
    public sealed class Login
    {
        public long Uid { get; private set; }
        public string Token { get; private set; }

        public Login(long uid, string token) { Uid = uid; Token = token; }
    }

    /// <summary>A single-use chat nonce: <c>{"nonce", "expires_in"}</c>.</summary>
    public sealed class Nonce
    {
        public string Value { get; private set; }
        public double ExpiresIn { get; private set; }

        public Nonce(string value, double expiresIn) { Value = value; ExpiresIn = expiresIn; }
    }

    /// <summary>The HTTP auth routes and the player's token. With <see cref="AutoRefresh"/> (the default) the
    /// token is traded for a fresh one once <see cref="RefreshAt"/> of its lifetime has passed (its JWT
    /// <c>iat</c>/<c>exp</c>), so a long session never sends an expired one.</summary>
    public sealed class AuthClient : IDisposable
    {
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false, true);

        readonly Uri baseUrl;
        readonly HttpClient http;
        readonly bool ownsHttp;
        readonly Dispatcher dispatcher;
        readonly object sync = new object();
        Timer refreshTimer;
        string token;
        long uid;
        DateTime? expiresAt;
        int generation; // bumps with each new token, so a stale timer does nothing

        /// <summary>Refresh when this share of the token's lifetime has passed (0.8: a 24 h token after 19.2 h).</summary>
        public double RefreshAt = 0.8;
        public bool AutoRefresh = true;
        /// <summary>Wait this long before trying again after a failed automatic refresh.</summary>
        public TimeSpan RetryAfter = TimeSpan.FromSeconds(30);

        /// <summary>A new token: after login, register, refresh (dispatched). Save it to resume later
        /// with <see cref="UseToken"/>.</summary>
        public event Action<Login> TokenChanged;
        /// <summary>An automatic refresh failed (dispatched); it is tried again after <see cref="RetryAfter"/>
        /// while the token is valid. <c>unauthorized</c>: log in again.</summary>
        public event Action<GameServerException> RefreshFailed;

        /// <param name="httpUrl">the HTTP listener, e.g. <c>http://127.0.0.1:8000</c></param>
        /// <param name="callbacks">where the events are raised (see <see cref="Dispatcher"/>)</param>
        /// <param name="http">an HttpClient to share, else one of its own</param>
        public AuthClient(string httpUrl, CallbackMode callbacks = CallbackMode.CallerContext, HttpClient http = null)
        {
            baseUrl = new Uri(httpUrl.EndsWith("/") ? httpUrl : httpUrl + "/");
            ownsHttp = http == null;
            this.http = http ?? new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            dispatcher = new Dispatcher(callbacks);
        }

        public string Token { get { lock (sync) return token; } }
        public long Uid { get { lock (sync) return uid; } }
        /// <summary>When the token expires (UTC), from its <c>exp</c> claim; null when unknown.</summary>
        public DateTime? ExpiresAt { get { lock (sync) return expiresAt; } }
        public Dispatcher Dispatcher { get { return dispatcher; } }

        /// <summary>Runs queued events (see <see cref="GameServer.Client.Dispatcher.Update"/>).</summary>
        public int Update() { return dispatcher.Update(); }

        /// <summary><c>POST /auth/register</c>; keeps the token. Throws HttpErrorException (<c>username_taken</c>
        /// 409, <c>bad_request</c> 400, <c>rate_limited</c> 429).</summary>
        public async Task<Login> RegisterAsync(string username, string password, string displayName = null)
        {
            var body = new Dictionary<string, object> { { "username", username }, { "password", password } };
            if (displayName != null) body["display_name"] = displayName;
            return Keep(await PostAsync("auth/register", body, null).ConfigureAwait(false));
        }

        /// <summary><c>POST /auth/login</c>; keeps the token. Throws HttpErrorException (<c>wrong_credentials</c>
        /// 401, <c>rate_limited</c> 429).</summary>
        public async Task<Login> LoginAsync(string username, string password)
        {
            var body = new Dictionary<string, object> { { "username", username }, { "password", password } };
            return Keep(await PostAsync("auth/login", body, null).ConfigureAwait(false));
        }

        /// <summary><c>POST /auth/refresh</c>: the token for a fresh one (<c>unauthorized</c> once expired or past
        /// <c>auth.session_max_age</c>: log in again).</summary>
        public async Task<Login> RefreshAsync()
        {
            return Keep(await PostAsync("auth/refresh", null, RequireToken()).ConfigureAwait(false));
        }

        /// <summary><c>POST /auth/nonce</c>: a single-use nonce for the chat edge's LOGIN.</summary>
        public async Task<Nonce> NonceAsync()
        {
            var data = await PostAsync("auth/nonce", null, RequireToken()).ConfigureAwait(false);
            return new Nonce(Wire.Str(Wire.Field(data, "nonce")), Wire.Float(Wire.Field(data, "expires_in")));
        }

        /// <summary><c>POST /auth/logout</c>: revokes every token of the player (every device) and forgets it.</summary>
        public async Task LogoutAsync()
        {
            await PostAsync("auth/logout", null, RequireToken()).ConfigureAwait(false);
            Forget();
        }

        /// <summary>Uses a token got elsewhere (saved from an earlier session, or a gate login); schedules its
        /// refresh.</summary>
        public void UseToken(string newToken, long newUid)
        {
            DateTime? issued, expires;
            ReadTimes(newToken, out issued, out expires);
            int mine;
            lock (sync)
            {
                if (token == newToken) return;
                token = newToken;
                uid = newUid;
                expiresAt = expires;
                mine = ++generation;
                if (refreshTimer != null) refreshTimer.Dispose();
                refreshTimer = null;
                if (AutoRefresh && issued.HasValue && expires.HasValue)
                {
                    var due = TimeSpan.FromTicks((long)((expires.Value - issued.Value).Ticks * RefreshAt)) - (DateTime.UtcNow - issued.Value);
                    refreshTimer = new Timer(_ => RefreshDue(mine), null, Clamp(due), Timeout.InfiniteTimeSpan);
                }
            }
            var login = new Login(newUid, newToken);
            dispatcher.Post(() => { var h = TokenChanged; if (h != null) h(login); });
        }

        /// <summary>Drops the token (no more refreshes).</summary>
        public void Forget()
        {
            lock (sync)
            {
                token = null;
                expiresAt = null;
                generation++;
                if (refreshTimer != null) refreshTimer.Dispose();
                refreshTimer = null;
            }
        }

        public void Dispose()
        {
            Forget();
            if (ownsHttp) http.Dispose();
        }

        async void RefreshDue(int mine)
        {
            string current;
            lock (sync)
            {
                if (mine != generation) return;
                current = token;
            }
            try
            {
                var data = await PostAsync("auth/refresh", null, current).ConfigureAwait(false);
                lock (sync) if (mine != generation) return; // forgotten or replaced meanwhile: keep that
                Keep(data);
            }
            catch (Exception e)
            {
                var error = e as GameServerException ?? new GameServerException(ClientErrorCodes.ConnectionLost, e.Message, e);
                lock (sync)
                {
                    if (mine != generation) return;
                    if (expiresAt.HasValue && expiresAt.Value > DateTime.UtcNow + RetryAfter)
                        refreshTimer = new Timer(_ => RefreshDue(mine), null, RetryAfter, Timeout.InfiniteTimeSpan);
                }
                dispatcher.Post(() => { var h = RefreshFailed; if (h != null) h(error); });
            }
        }

        static TimeSpan Clamp(TimeSpan due)
        {
            if (due < TimeSpan.Zero) return TimeSpan.Zero;
            var max = TimeSpan.FromMilliseconds(int.MaxValue - 1); // Timer's limit (about 24.8 days)
            return due > max ? max : due;
        }

        string RequireToken()
        {
            var t = Token;
            if (t == null) throw new InvalidOperationException("no token: register or log in first");
            return t;
        }

        Login Keep(object data)
        {
            var login = new Login(Wire.Int(Wire.Field(data, "uid")), Wire.Str(Wire.Field(data, "token")));
            UseToken(login.Token, login.Uid);
            return login;
        }

        async Task<object> PostAsync(string path, object body, string bearer)
        {
            using (var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUrl, path)))
            {
                if (body != null) request.Content = new StringContent(Json.Serialize(body), Utf8, "application/json");
                if (bearer != null) request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + bearer);
                HttpResponseMessage response;
                try
                {
                    response = await http.SendAsync(request).ConfigureAwait(false);
                }
                catch (HttpRequestException e)
                {
                    throw new ConnectionException(ClientErrorCodes.NotConnected, path + ": " + e.Message, e);
                }
                using (response)
                {
                    var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
                    object data = null;
                    try { data = text.Length == 0 ? null : Json.Parse(text); }
                    catch (FormatException) { } // e.g. an HTML error page from a proxy: reported below by status
                    if (response.IsSuccessStatusCode)
                    {
                        if (data == null) throw new GameServerException(ClientErrorCodes.Protocol, path + ": not JSON");
                        return data;
                    }
                    var error = data == null ? null : Wire.Field(data, "error") as IDictionary<string, object>;
                    var code = error == null ? null : Wire.Field(error, "code") as string;
                    var message = error == null ? null : Wire.Field(error, "message") as string;
                    throw new HttpErrorException((int)response.StatusCode, code ?? "http_" + (int)response.StatusCode,
                        message ?? response.ReasonPhrase ?? "");
                }
            }
        }

        // The JWT's iat and exp (docs/auth.md, "Tokens"): read for scheduling only; the server alone verifies.
        static void ReadTimes(string jwt, out DateTime? issued, out DateTime? expires)
        {
            issued = null;
            expires = null;
            var parts = jwt.Split('.');
            if (parts.Length != 3) return;
            try
            {
                var b64 = parts[1].Replace('-', '+').Replace('_', '/');
                b64 += new string('=', (4 - b64.Length % 4) % 4);
                var claims = Json.Parse(Utf8.GetString(Convert.FromBase64String(b64))) as IDictionary<string, object>;
                if (claims == null) return;
                object iat, exp;
                var epoch = new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc);
                if (claims.TryGetValue("iat", out iat) && (iat is long || iat is double)) issued = epoch.AddSeconds(Wire.Float(iat));
                if (claims.TryGetValue("exp", out exp) && (exp is long || exp is double)) expires = epoch.AddSeconds(Wire.Float(exp));
            }
            catch (FormatException) { } // not a JWT we can read: no automatic refresh, the token still works
        }
    }
}
