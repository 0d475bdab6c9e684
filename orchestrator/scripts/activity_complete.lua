-- Complete a running activity attempt with its result.
--
-- KEYS[1] activity hash
-- KEYS[2] run hash
-- KEYS[3] history stream
-- KEYS[4] workflow task stream of the run's task queue
-- KEYS[5] due-time set (timers) of the shard
-- ARGV[1] stream entry id of the attempt's task (the attempt's identity)
-- ARGV[2] result JSON
--
-- Returns {'OK'} or {'STALE'} when the attempt is no longer current (it timed
-- out and was retried, or the run closed): nothing is changed.
--!include lib/common.lua
--!include lib/activity.lua

local act = current_attempt(KEYS[1], KEYS[2], ARGV[1])
if not act then
  return {'STALE'}
end
close_activity(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], 'ActivityTaskCompleted',
  '{"seq":' .. act.seq .. ',"attempt":' .. act.attempt .. ',"result":' .. ARGV[2] .. '}',
  now_ms())
return {'OK'}
