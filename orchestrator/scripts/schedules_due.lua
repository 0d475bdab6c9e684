-- Claim the schedules due for a look, by the server's clock. Each id returned
-- moves RECHECK_MS ahead in the set, so other drivers leave it alone meanwhile
-- and it comes back by itself if this driver dies; the transition the driver
-- then runs stores the schedule's real wake time. The claim only spares the
-- others needless work: that a fire time is acted on once rests on
-- schedule_advance's compare-and-set, not on this.
--
-- KEYS[1] set of schedules         ns:{sched}:schedules
-- ARGV[1] maximum number of schedules to claim
--
-- Returns {now ms, earliest wake time left in the set (ms, 'inf') or '', schedule id...}
--!include lib/common.lua
--!include lib/schedule.lua

local now = now_ms()
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
for _, schedule_id in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', now + RECHECK_MS, schedule_id)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reply = {now, first[2] or ''}
for _, schedule_id in ipairs(due) do
  reply[#reply + 1] = schedule_id
end
return reply
