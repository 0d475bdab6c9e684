-- An activity's timer fell due: a start-to-close timeout ('stc'), a heartbeat
-- timeout ('hb'), a schedule-to-start timeout ('s2s'), the overall
-- schedule-to-close timeout ('s2c'), or the end of a retry backoff ('retry').
--
-- KEYS[1] activity hash
-- KEYS[2] run hash
-- KEYS[3] history stream
-- KEYS[4] workflow task stream of the run's task queue
-- KEYS[5] activity task stream of the activity's task queue
-- KEYS[6] due-time set (timers) of the shard
-- ARGV[1] timer member
-- ARGV[2] 'stc', 'hb', 's2s', 's2c' or 'retry'
-- ARGV[3] stream entry id of the timed-out attempt ('stc' and 'hb')
-- ARGV[4] random number in [0, 1) for the jitter
-- ARGV[5] timer member that dispatches a retry ('stc' and 'hb')
--
-- Returns {'RETRY', delay ms, activity type}, {'TIMED_OUT', activity type},
-- {'DISPATCHED', attempt},
-- {'STALE'} when the activity moved on, or {'GONE'} when another process
-- already fired this timer.
--!include lib/common.lua
--!include lib/activity.lua

local act_key, run, history, wft_stream, act_stream, timers =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local kind = ARGV[2]
if redis.call('ZREM', timers, ARGV[1]) == 0 then
  return {'GONE'}
end
local act = redis.call('HMGET', act_key, 'status', 'entry', 'attempt', 'seq', 'w', 'r', 'task',
  's2s_ms', 's2s_timer')
if not act[1] then
  return {'STALE'}
end
if redis.call('HGET', run, 'status') ~= 'RUNNING' then
  -- The run closed with this activity open: nothing will ever report it.
  redis.call('DEL', act_key)
  return {'STALE'}
end
local now = now_ms()

local function timeout_failure(timeout_type, message, non_retryable)
  return cjson.encode({type = 'TimeoutError', attempt = tonumber(act[3]), message = message,
    stack = '', non_retryable = non_retryable, timeout_type = timeout_type})
end

local function close_timed_out(failure)
  close_activity(act_key, run, history, wft_stream, timers, 'ActivityTaskTimedOut',
    '{"seq":' .. act[4] .. ',"attempt":' .. act[3] .. ',"failure":' .. failure .. '}', now)
  return {'TIMED_OUT', cjson.decode(act[7]).type}
end

if kind == 'retry' then
  if act[1] ~= 'backoff' then return {'STALE'} end
  local attempt = tonumber(act[3]) + 1
  local entry = redis.call('XADD', act_stream, '*',
    'w', act[5], 'r', act[6], 's', act[4], 'a', attempt, 't', act[7])
  redis.call('HSET', act_key, 'status', 'scheduled', 'entry', entry, 'attempt', attempt,
    'retry_timer', '')
  if tonumber(act[8] or 0) > 0 then
    redis.call('ZADD', timers, now + tonumber(act[8]), act[9])
  end
  return {'DISPATCHED', attempt}
end

if kind == 'stc' or kind == 'hb' then
  if act[1] ~= 'running' or act[2] ~= ARGV[3] then return {'STALE'} end
  local failure
  if kind == 'stc' then
    failure = timeout_failure('START_TO_CLOSE',
      'activity attempt exceeded its start-to-close timeout', false)
  else
    failure = timeout_failure('HEARTBEAT',
      'activity attempt sent no heartbeat within its heartbeat timeout', false)
  end
  local delay = end_attempt(act_key, run, history, wft_stream, timers, failure, 'TimeoutError',
    false, tonumber(ARGV[4]), ARGV[5], 'ActivityTaskTimedOut', now)
  if delay < 0 then return {'TIMED_OUT', cjson.decode(act[7]).type} end
  return {'RETRY', delay, cjson.decode(act[7]).type}
end

if kind == 's2s' then
  -- No worker took the attempt in time: retrying would only queue it again.
  if act[1] ~= 'scheduled' then return {'STALE'} end
  return close_timed_out(timeout_failure('SCHEDULE_TO_START',
    'no worker started the activity within its schedule-to-start timeout', true))
end

-- 's2c': the activity as a whole ran out of time, whatever attempt is under way.
return close_timed_out(timeout_failure('SCHEDULE_TO_CLOSE',
  'activity exceeded its schedule-to-close timeout', true))
