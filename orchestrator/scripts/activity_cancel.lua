-- A running activity attempt stopped because its cancellation was requested:
-- close the activity as canceled and tell the workflow.
--
-- KEYS[1] activity hash
-- KEYS[2] run hash
-- KEYS[3] history stream
-- KEYS[4] workflow task stream of the run's task queue
-- KEYS[5] due-time set (timers) of the shard
-- ARGV[1] stream entry id of the attempt's task (the attempt's identity)
-- ARGV[2] details JSON (what the activity reported when it stopped)
--
-- Returns {'OK'} or {'STALE'} when the attempt is no longer current.
--!include lib/common.lua
--!include lib/activity.lua

local act = current_attempt(KEYS[1], KEYS[2], ARGV[1])
if not act or not act.cancel_requested then
  return {'STALE'}
end
close_activity(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], 'ActivityTaskCanceled',
  '{"seq":' .. act.seq .. ',"attempt":' .. act.attempt .. ',"details":' .. ARGV[2] .. '}',
  now_ms())
return {'OK'}
