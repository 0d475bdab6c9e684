-- Act on one firing of a schedule: a fire time of its spec fell due ('fire'), a
-- manual trigger ('trigger'), or a buffered firing whose blocker closed
-- ('release'). The caller has read the schedule, computed its next fire time
-- (Lua cannot parse cron) and decided, from the status of the workflow the
-- schedule last started, what the overlap policy calls for. The script applies
-- that only if the schedule is still as the caller saw it (compare-and-set):
-- when two drivers act on the same fire time, the second finds the stored next
-- fire time moved on and changes nothing.
--
-- A start is only recorded here, as the schedule's pending action: the workflow
-- lives on the shard of its own id, another slot. The caller then starts it
-- idempotently and clears it with schedule_action_done; whoever finds it still
-- pending (its driver died in between) starts it again, harmlessly.
--
-- KEYS[1] schedule hash            ns:{sched}:schedule:<schedule id>
-- KEYS[2] set of schedules         ns:{sched}:schedules
-- ARGV[1] schedule id
-- ARGV[2] kind of firing: 'fire', 'trigger' or 'release'
-- ARGV[3] what the caller saw: for 'fire' the stored next fire time, for
--         'release' the buffered fire time, '' for 'trigger'
-- ARGV[4] workflow id the schedule last started, as the caller saw it ('' for none);
--         the overlap decision was taken on its status
-- ARGV[5] decision: 'start', 'skip' (overlap), 'buffer' (overlap, buffer_one) or
--         'none' (every fire time due was missed; 'fire' only)
-- ARGV[6] fire time acted on, ms
-- ARGV[7] workflow id to start ('' unless the decision is 'start')
-- ARGV[8] next fire time, ms ('fire' only; the other kinds leave it)
-- ARGV[9] number of fire times missed (catch-up), added to the count ('fire' only)
--
-- Returns {'OK', outcome, wake time ms or 'inf'}: outcome is the decision, except
--         that 'buffer' becomes 'skip' when a firing is buffered already
--      or {'STALE'}: the schedule is not as the caller saw it (acted on by
--         another driver, paused, ...); nothing was changed, read it again
--      or {'PENDING'}: an earlier start is still pending; complete it first
--      or {'NOT_FOUND'}
--!include lib/common.lua
--!include lib/schedule.lua

local s = redis.call('HMGET', KEYS[1], 'next_fire', 'buffered', 'last_workflow_id', 'pending',
  'paused')
if not s[1] then
  return {'NOT_FOUND'}
end
if s[4] ~= '' then
  return {'PENDING'}
end
local kind = ARGV[2]
if s[3] ~= ARGV[4] or (kind ~= 'trigger' and s[5] == '1') or
    (kind == 'fire' and s[1] ~= ARGV[3]) or (kind == 'release' and s[2] ~= ARGV[3]) then
  return {'STALE'}
end

if kind == 'fire' then
  redis.call('HSET', KEYS[1], 'next_fire', ARGV[8])
  redis.call('HINCRBY', KEYS[1], 'missed', ARGV[9])
elseif kind == 'release' then
  redis.call('HSET', KEYS[1], 'buffered', '')
end

local outcome = ARGV[5]
if outcome == 'start' then
  redis.call('HSET', KEYS[1], 'pending', ARGV[7], 'pending_fire', ARGV[6],
    'last_workflow_id', ARGV[7])
elseif outcome == 'buffer' and s[2] == '' then
  redis.call('HSET', KEYS[1], 'buffered', ARGV[6])
elseif outcome ~= 'none' then
  -- buffer_one keeps the oldest firing: a later one is dropped, like a skip.
  outcome = 'skip'
  redis.call('HINCRBY', KEYS[1], 'skipped', 1)
end
return {'OK', outcome, set_wake(KEYS[1], KEYS[2], ARGV[1], now_ms())}
