-- Start an activity attempt taken from the queue.
--
-- KEYS[1] activity hash
-- KEYS[2] run hash
-- KEYS[3] history stream
-- KEYS[4] activity task stream the entry was read from
-- KEYS[5] due-time set (timers) of the shard
-- ARGV[1] stream entry id of the task (the attempt's identity)
-- ARGV[2] consumer group
-- ARGV[3] worker id
-- ARGV[4] start-to-close timeout ms
-- ARGV[5] timer member that fires the start-to-close timeout
-- ARGV[6] heartbeat timeout ms (0: none)
-- ARGV[7] timer member that fires the heartbeat timeout
--
-- Returns {'OK', attempt, start time ms, scheduled time ms, last heartbeat details JSON}
--      or {'STALE'} when the attempt is no longer current (timed out, cancelled,
--         run closed); either way the stream entry is acknowledged and deleted.
--!include lib/common.lua

redis.call('XACK', KEYS[4], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[4], ARGV[1])

local act = redis.call('HMGET', KEYS[1], 'status', 'entry', 'attempt', 'seq', 'scheduled_at',
  'details')
if act[1] ~= 'scheduled' or act[2] ~= ARGV[1] then
  return {'STALE'}
end
if redis.call('HGET', KEYS[2], 'status') ~= 'RUNNING' then
  -- The run closed with this activity open: nothing will ever report it.
  redis.call('DEL', KEYS[1])
  return {'STALE'}
end

local now = now_ms()
clear_timer(KEYS[1], 's2s_timer', KEYS[5])
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', now, 'worker', ARGV[3],
  'stc_timer', ARGV[5])
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[4]), ARGV[5])
if tonumber(ARGV[6]) > 0 then
  redis.call('HSET', KEYS[1], 'hb_timer', ARGV[7])
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[6]), ARGV[7])
end
append_event(KEYS[2], KEYS[3], 'ActivityTaskStarted',
  '{"seq":' .. act[4] .. ',"attempt":' .. act[3] .. ',"worker":' .. cjson.encode(ARGV[3]) .. '}',
  now)
return {'OK', tonumber(act[3]), now, tonumber(act[5]), act[6] or ''}
