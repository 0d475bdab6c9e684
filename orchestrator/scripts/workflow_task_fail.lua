-- Fail a running workflow task (workflow code could not run, or replay found
-- non-determinism). The run stays open; the task is retried after a backoff so
-- that fixed code, once deployed, picks the run up where it was.
--
-- KEYS[1] run hash
-- KEYS[2] history stream
-- KEYS[3] due-time set (timers) of the shard
-- ARGV[1] stream entry id of the task (must be the current workflow task)
-- ARGV[2] worker id
-- ARGV[3] failure JSON
-- ARGV[4] timer member that dispatches the retry
--
-- Returns {'OK', retry delay ms} or {'STALE'}.
--!include lib/common.lua

local run = redis.call('HMGET', KEYS[1], 'status', 'wft', 'wft_entry', 'wft_attempt')
if run[1] ~= 'RUNNING' or run[2] ~= 'running' or run[3] ~= ARGV[1] then
  return {'STALE'}
end

local now, attempt = now_ms(), tonumber(run[4])
-- 1 s, 2 s, 4 s, ... capped at 10 minutes.
local delay = math.min(1000 * 2 ^ (attempt - 1), 600000)
clear_timer(KEYS[1], 'wft_timer', KEYS[3])
append_event(KEYS[1], KEYS[2], 'WorkflowTaskFailed',
  '{"worker":' .. cjson.encode(ARGV[2]) .. ',"attempt":' .. attempt ..
  ',"failure":' .. ARGV[3] .. '}', now)
redis.call('HSET', KEYS[1], 'wft', 'backoff', 'wft_timer', ARGV[4], 'wft_attempt', attempt + 1)
redis.call('ZADD', KEYS[3], now + delay, ARGV[4])
return {'OK', delay}
