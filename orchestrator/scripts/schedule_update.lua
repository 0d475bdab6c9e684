-- Pause, unpause or delete a schedule.
--
-- KEYS[1] schedule hash            ns:{sched}:schedule:<schedule id>
-- KEYS[2] set of schedules         ns:{sched}:schedules
-- KEYS[3] recent actions list      ns:{sched}:schedule:<schedule id>:recent
-- ARGV[1] schedule id
-- ARGV[2] operation: 'pause', 'unpause' or 'delete'
-- ARGV[3] note: why it was paused or unpaused ('' for none)
-- ARGV[4] first fire time after now, ms ('unpause' only; computed by the caller).
--         The fire times that passed while paused are neither fired nor counted.
--
-- Returns {'OK', wake time ms or 'inf'} ({'OK'} for 'delete')
--      or {'NOT_FOUND'}
--!include lib/common.lua
--!include lib/schedule.lua

local paused = redis.call('HGET', KEYS[1], 'paused')
if not paused then
  return {'NOT_FOUND'}
end
local op = ARGV[2]
if op == 'delete' then
  redis.call('DEL', KEYS[1], KEYS[3])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'OK'}
end
if op == 'pause' then
  redis.call('HSET', KEYS[1], 'paused', '1', 'note', ARGV[3])
else
  if paused == '1' then
    redis.call('HSET', KEYS[1], 'next_fire', ARGV[4])
  end
  redis.call('HSET', KEYS[1], 'paused', '0', 'note', ARGV[3])
end
return {'OK', set_wake(KEYS[1], KEYS[2], ARGV[1], now_ms())}
