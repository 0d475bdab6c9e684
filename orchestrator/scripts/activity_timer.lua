-- An activity's timer fell due: a start-to-close timeout ('stc'), the overall
-- schedule-to-close timeout ('s2c'), or the end of a retry backoff ('retry').
--
-- KEYS[1] activity hash
-- KEYS[2] run hash
-- KEYS[3] history stream
-- KEYS[4] workflow task stream of the run's task queue
-- KEYS[5] activity task stream of the activity's task queue
-- KEYS[6] due-time set (timers) of the shard
-- ARGV[1] timer member
-- ARGV[2] 'stc', 's2c' or 'retry'
-- ARGV[3] stream entry id of the timed-out attempt ('stc' only)
-- ARGV[4] random number in [0, 1) for the jitter
-- ARGV[5] timer member that dispatches a retry ('stc' only)
--
-- Returns {'RETRY', delay ms}, {'TIMED_OUT'}, {'DISPATCHED', attempt},
-- {'STALE'} when the activity moved on, or {'GONE'} when another process
-- already fired this timer.
--!include lib/common.lua
--!include lib/activity.lua

local act_key, run, history, wft_stream, act_stream, timers =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('ZREM', timers, ARGV[1]) == 0 then
  return {'GONE'}
end
local act = redis.call('HMGET', act_key, 'status', 'entry', 'attempt', 'seq', 'w', 'r', 'task')
if not act[1] or redis.call('HGET', run, 'status') ~= 'RUNNING' then
  return {'STALE'}
end
local now = now_ms()

if ARGV[2] == 'retry' then
  if act[1] ~= 'backoff' then return {'STALE'} end
  local attempt = tonumber(act[3]) + 1
  local entry = redis.call('XADD', act_stream, '*',
    'w', act[5], 'r', act[6], 's', act[4], 'a', attempt, 't', act[7])
  redis.call('HSET', act_key, 'status', 'scheduled', 'entry', entry, 'attempt', attempt,
    'retry_timer', '')
  return {'DISPATCHED', attempt}
end

if ARGV[2] == 'stc' then
  if act[1] ~= 'running' or act[2] ~= ARGV[3] then return {'STALE'} end
  local failure = cjson.encode({type = 'TimeoutError', attempt = tonumber(act[3]),
    message = 'activity attempt exceeded its start-to-close timeout', stack = '',
    non_retryable = false, timeout_type = 'START_TO_CLOSE'})
  local delay = end_attempt(act_key, run, history, wft_stream, timers, failure, 'TimeoutError',
    false, tonumber(ARGV[4]), ARGV[5], 'ActivityTaskTimedOut', now)
  if delay < 0 then return {'TIMED_OUT'} end
  return {'RETRY', delay}
end

-- 's2c': the activity as a whole ran out of time, whatever attempt is under way.
local failure = cjson.encode({type = 'TimeoutError', attempt = tonumber(act[3]),
  message = 'activity exceeded its schedule-to-close timeout', stack = '',
  non_retryable = true, timeout_type = 'SCHEDULE_TO_CLOSE'})
close_activity(act_key, run, history, wft_stream, timers, 'ActivityTaskTimedOut',
  '{"seq":' .. act[4] .. ',"attempt":' .. act[3] .. ',"failure":' .. failure .. '}', now)
return {'TIMED_OUT'}
