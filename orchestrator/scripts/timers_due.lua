-- Read the timers of a shard that are due, by the server's clock. Read-only:
-- each member is then fired by its own transition script, which removes it
-- atomically, so a timer fires once however many workers poll.
--
-- KEYS[1] due-time set (timers) of the shard
-- ARGV[1] maximum number of members to return
--
-- Returns {now ms, due time ms of the earliest timer not returned or -1, member...}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
local next_due = -1
local after = redis.call('ZRANGE', KEYS[1], #due, #due, 'WITHSCORES')
if after[2] then next_due = tonumber(after[2]) end
local reply = {now, next_due}
for _, member in ipairs(due) do reply[#reply + 1] = member end
return reply
