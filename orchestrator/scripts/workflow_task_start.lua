-- Start a workflow task taken from the queue and hand the worker the history.
--
-- KEYS[1] run hash
-- KEYS[2] history stream
-- KEYS[3] workflow task stream the entry was read from
-- KEYS[4] due-time set (timers) of the shard
-- ARGV[1] stream entry id of the task (the task's identity)
-- ARGV[2] consumer group
-- ARGV[3] worker id
-- ARGV[4] workflow task timeout ms
-- ARGV[5] timer member that fires the timeout
-- ARGV[6] return only events after this event id (0 for all: the worker caches the rest)
--
-- Returns {'OK', start time ms, attempt, event JSON...}
--      or {'STALE'} when the task is no longer current (timed out, run closed);
-- either way the stream entry is acknowledged and deleted.
--!include lib/common.lua

redis.call('XACK', KEYS[3], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[3], ARGV[1])

local run = redis.call('HMGET', KEYS[1], 'status', 'wft', 'wft_entry', 'wft_attempt')
if run[1] ~= 'RUNNING' or run[2] ~= 'scheduled' or run[3] ~= ARGV[1] then
  return {'STALE'}
end

local now = now_ms()
redis.call('HSET', KEYS[1], 'wft', 'running', 'wft_timer', ARGV[5], 'wft_worker', ARGV[3])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[5])
append_event(KEYS[1], KEYS[2], 'WorkflowTaskStarted',
  cjson.encode({worker = ARGV[3], attempt = tonumber(run[4])}), now)

local reply = {'OK', now, tonumber(run[4])}
for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[6], '+')) do
  reply[#reply + 1] = entry[2][2]
end
return reply
