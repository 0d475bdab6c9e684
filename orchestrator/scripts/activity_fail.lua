-- Fail a running activity attempt: retry it after a backoff, or fail the
-- activity for good, as its retry policy says.
--
-- KEYS[1] activity hash
-- KEYS[2] run hash
-- KEYS[3] history stream
-- KEYS[4] workflow task stream of the run's task queue
-- KEYS[5] due-time set (timers) of the shard
-- ARGV[1] stream entry id of the attempt's task (the attempt's identity)
-- ARGV[2] failure JSON
-- ARGV[3] failure type (matched against the policy's non-retryable types)
-- ARGV[4] '1' if the failure is marked non-retryable, else '0'
-- ARGV[5] random number in [0, 1) for the jitter
-- ARGV[6] timer member that dispatches the retry
-- ARGV[7] '1' if the worker cut the attempt short as it shut down: retry at once
--
-- Returns {'RETRY', delay ms}, {'FAILED'} or {'STALE'} (attempt no longer current).
--!include lib/common.lua
--!include lib/activity.lua

if not current_attempt(KEYS[1], KEYS[2], ARGV[1]) then
  return {'STALE'}
end

local delay = end_attempt(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[3],
  ARGV[4] == '1', tonumber(ARGV[5]), ARGV[6], 'ActivityTaskFailed', now_ms(), ARGV[7] == '1')
if delay < 0 then
  return {'FAILED'}
end
return {'RETRY', delay}
