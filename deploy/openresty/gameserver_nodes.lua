-- Route a player to one gameserver node from the node registry in Redis (seed 002; docs/operations.md,
-- "Node registry"): no proxy config to regenerate or reload when nodes come and go.
--
-- A client connects to wss://front/ws?node=<id> (the id from GET /nodes/pick); this looks up the node's entry,
-- the hash <prefix>nodes.<id>, and proxies to the address in its field (addr.ws by default). A node that stopped
-- gracefully, or was killed and whose entry expired, has no entry: 404, and the client picks again.
--
-- Runs on OpenResty (resty.redis) and on Debian's nginx with libnginx-mod-http-lua and lua-nginx-redis (the same
-- library, named nginx.redis there).

local found, redis = pcall(require, "resty.redis")
if not found then
    redis = require("nginx.redis")
end

local _M = {}

local NODE_ID = "^[%w%.%-_:]+$" -- server.node_id: letters, digits, . - _ :

-- opts: host, port, password, db (Redis), prefix (redis.prefix, e.g. "gs:"), field (default "addr.ws"),
-- timeout (ms, default 1000). Sets ngx.var.backend_node to "host:port", or ends the request.
function _M.route(opts)
    local node = ngx.var.arg_node
    if not node or not node:match(NODE_ID) then
        ngx.log(ngx.INFO, "gameserver node routing: no valid ?node= in ", ngx.var.request_uri)
        return ngx.exit(ngx.HTTP_BAD_REQUEST)
    end

    local red = redis:new()
    local timeout = opts.timeout or 1000
    red:set_timeouts(timeout, timeout, timeout)
    local ok, err = red:connect(opts.host or "127.0.0.1", opts.port or 6379)
    if not ok then
        ngx.log(ngx.ERR, "gameserver node routing: cannot connect to Redis: ", err)
        return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
    end
    if opts.password then
        ok, err = red:auth(opts.password)
        if not ok then
            ngx.log(ngx.ERR, "gameserver node routing: Redis AUTH failed: ", err)
            return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
        end
    end
    if opts.db and opts.db ~= 0 then
        red:select(opts.db)
    end

    local key = (opts.prefix or "gs:") .. "nodes." .. node
    local address
    address, err = red:hget(key, opts.field or "addr.ws")
    if err then
        ngx.log(ngx.ERR, "gameserver node routing: HGET ", key, " failed: ", err)
        return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
    end
    red:set_keepalive(10000, 100) -- back to the pool: one connection serves many players
    if address == ngx.null or address == nil or address == "" then
        ngx.log(ngx.WARN, "gameserver node routing: no live node ", node, " (", key, ")")
        return ngx.exit(ngx.HTTP_NOT_FOUND)
    end
    ngx.var.backend_node = address
end

return _M
