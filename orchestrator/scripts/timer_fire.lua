-- A durable timer started by workflow code fell due: record it and wake the workflow.
--
-- KEYS[1] run hash
-- KEYS[2] history stream
-- KEYS[3] workflow task stream of the run's task queue
-- KEYS[4] due-time set (timers) of the shard
-- ARGV[1] timer member
-- ARGV[2] timer seq
--
-- Returns {'OK'}, {'STALE'} when the run is closed, or {'GONE'} when the timer
-- was cancelled or another process already fired it.
--!include lib/common.lua

if redis.call('ZREM', KEYS[4], ARGV[1]) == 0 then
  return {'GONE'}
end
local run = redis.call('HMGET', KEYS[1], 'status', 'workflow_id', 'run_id')
if run[1] ~= 'RUNNING' then
  return {'STALE'}
end
append_event(KEYS[1], KEYS[2], 'TimerFired', '{"seq":' .. ARGV[2] .. '}', now_ms())
schedule_workflow_task(KEYS[1], KEYS[3], run[2], run[3])
return {'OK'}
