-- The pending start of a schedule is done: its workflow exists (started now, or
-- earlier by a driver that died before recording it). Record it and clear it.
--
-- KEYS[1] schedule hash            ns:{sched}:schedule:<schedule id>
-- KEYS[2] set of schedules         ns:{sched}:schedules
-- KEYS[3] recent actions list      ns:{sched}:schedule:<schedule id>:recent
-- ARGV[1] schedule id
-- ARGV[2] workflow id of the pending action
-- ARGV[3] the action (JSON object: workflow_id, run_id, fire_time), put first in KEYS[3]
-- ARGV[4] number of recent actions to keep
--
-- Returns {'OK', wake time ms or 'inf'}
--      or {'GONE'}: that action is not pending (another driver recorded it, or
--         the schedule was deleted); nothing was changed.
--!include lib/common.lua
--!include lib/schedule.lua

if redis.call('HGET', KEYS[1], 'pending') ~= ARGV[2] then
  return {'GONE'}
end
redis.call('HSET', KEYS[1], 'pending', '', 'pending_fire', '')
redis.call('HINCRBY', KEYS[1], 'actions', 1)
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
return {'OK', set_wake(KEYS[1], KEYS[2], ARGV[1], now_ms())}
