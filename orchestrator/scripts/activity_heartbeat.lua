-- Record a heartbeat of a running activity attempt: its progress details, and a
-- new heartbeat deadline. Tells the attempt whether its cancellation was requested.
--
-- KEYS[1] activity hash
-- KEYS[2] due-time set (timers) of the shard
-- ARGV[1] stream entry id of the attempt's task (the attempt's identity)
-- ARGV[2] details JSON
-- ARGV[3] heartbeat timeout ms (0: none)
-- ARGV[4] timer member that fires the heartbeat timeout
--
-- Returns {'OK', 1 if cancellation was requested else 0}
--      or {'STALE'} when the attempt is no longer current: the worker should stop it.
local act = redis.call('HMGET', KEYS[1], 'status', 'entry', 'cancel_requested')
if act[1] ~= 'running' or act[2] ~= ARGV[1] then
  return {'STALE'}
end
redis.call('HSET', KEYS[1], 'details', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  -- Same member, later score: the deadline slides forward.
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
end
return {'OK', act[3] == '1' and 1 or 0}
