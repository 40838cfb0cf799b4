"""What the two Redis-stream consumers (background jobs, remote requests) share about their pending entries."""

# KEYS: stream, consumer. ARGV: group, then entry ids. Touches (XCLAIM to itself, resetting the idle time) those of
# the ids that the consumer still owns: an entry another worker has reclaimed meanwhile stays with that worker, and a
# long run is not taken from a live one by XAUTOCLAIM.
TOUCH = """
local touched = 0
for i = 2, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == KEYS[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], KEYS[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
"""
