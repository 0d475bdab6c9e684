-- A run's run timeout or execution timeout fell due: close it as timed out,
-- without running its code.
--
-- KEYS[1] run hash
-- KEYS[2] history stream
-- KEYS[3] workflow pointer hash
-- KEYS[4] due-time set (timers) of the shard
-- KEYS[5] children hash of the run
-- KEYS[6] visibility summaries of the shard
-- KEYS[7] visibility index by close time of the shard
-- KEYS[8] visibility index of the shard's open runs
-- KEYS[9] visibility index of the shard's runs closed TIMED_OUT
-- KEYS[10] counters of runs started and closed, of the shard
-- ARGV[1] timer member
--
-- Returns {'OK'}, {'STALE'} when the run already closed, or {'GONE'} when another
-- process already fired this timer.
--!include lib/common.lua
--!include lib/visibility.lua
--!include lib/close.lua

if redis.call('ZREM', KEYS[4], ARGV[1]) == 0 then
  return {'GONE'}
end
if redis.call('HGET', KEYS[1], 'status') ~= 'RUNNING' then
  return {'STALE'}
end
local now = now_ms()
append_event(KEYS[1], KEYS[2], 'WorkflowExecutionTimedOut', '{}', now)
redis.call('HSET', KEYS[1], 'status', 'TIMED_OUT', 'closed_at', now, 'wft', '',
  'wft_pending', '', 'timeout_timer', '',
  'failure', '{"type":"TimeoutError","message":"workflow run exceeded its timeout"}')
redis.call('HSET', KEYS[3], 'status', 'TIMED_OUT')
local ids = redis.call('HMGET', KEYS[1], 'workflow_id', 'run_id')
on_run_closed(KEYS[1], KEYS[5], KEYS[4], {runs = KEYS[6], close = KEYS[7], open = KEYS[8],
  by_status = {TIMED_OUT = KEYS[9]}, stats = KEYS[10]}, ids[1], ids[2],
  'TIMED_OUT', now)
return {'OK'}
