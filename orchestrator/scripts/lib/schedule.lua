-- Helpers shared by the schedule scripts, pasted in where a script says
-- `--!include lib/schedule.lua`.
--
-- A schedule's score in the set of schedules is its wake time: when a driver
-- must next look at it. That is its next fire time, unless something needs a
-- look sooner.

-- How soon a schedule is looked at again when it waits on something: a pending
-- start whose driver may have died, a buffered firing waiting for the running
-- workflow to close, or a driver's claim on it (schedules_due.lua).
local RECHECK_MS = 1000

-- The wake time the schedule's state calls for: 'inf' while paused with
-- nothing pending (a paused schedule still completes a start already decided).
local function schedule_wake(schedule_key, now)
  local s = redis.call('HMGET', schedule_key, 'paused', 'next_fire', 'pending', 'buffered')
  if s[3] and s[3] ~= '' then
    return now + RECHECK_MS
  end
  if s[1] == '1' then
    return 'inf'
  end
  local next_fire = tonumber(s[2])
  if s[4] and s[4] ~= '' then
    return math.min(next_fire, now + RECHECK_MS)
  end
  return next_fire
end

-- Store the schedule's wake time as its score, and return it.
local function set_wake(schedule_key, schedules_key, schedule_id, now)
  local wake = schedule_wake(schedule_key, now)
  redis.call('ZADD', schedules_key, wake, schedule_id)
  return wake
end
