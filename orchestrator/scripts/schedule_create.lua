-- Create a schedule: its definition, its state, and its place in the set of schedules.
--
-- KEYS[1] schedule hash            ns:{sched}:schedule:<schedule id>
-- KEYS[2] set of schedules         ns:{sched}:schedules
-- ARGV[1] schedule id
-- ARGV[2] spec (JSON object: cron or interval_ms, timezone)
-- ARGV[3] action (JSON object: workflow_type, task_queue, args, workflow_id_prefix)
-- ARGV[4] overlap policy: 'skip', 'buffer_one' or 'allow_all'
-- ARGV[5] catch-up window, ms
-- ARGV[6] first fire time, ms (computed by the caller: Lua cannot parse cron)
-- ARGV[7] '1' to create it paused, else '0'
-- ARGV[8] note on the pause ('' for none)
--
-- Returns {'OK', wake time ms or 'inf'}
--      or {'EXISTS'}: the schedule id is taken; nothing was changed.
--!include lib/common.lua
--!include lib/schedule.lua

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'EXISTS'}
end
local now = now_ms()
redis.call('HSET', KEYS[1],
  'schedule_id', ARGV[1], 'spec', ARGV[2], 'action', ARGV[3], 'overlap', ARGV[4],
  'catchup_ms', ARGV[5], 'next_fire', ARGV[6], 'paused', ARGV[7], 'note', ARGV[8],
  'created_at', now, 'pending', '', 'pending_fire', '', 'buffered', '',
  'last_workflow_id', '', 'actions', 0, 'missed', 0, 'skipped', 0)
return {'OK', set_wake(KEYS[1], KEYS[2], ARGV[1], now)}
