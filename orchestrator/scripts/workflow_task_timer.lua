-- A workflow task's timer fell due: either its worker went silent (the task
-- timed out) or its retry backoff is over. Either way a new task is queued.
--
-- KEYS[1] run hash
-- KEYS[2] history stream
-- KEYS[3] workflow task stream of the run's task queue
-- KEYS[4] due-time set (timers) of the shard
-- ARGV[1] timer member
-- ARGV[2] 'timeout' or 'retry'
-- ARGV[3] stream entry id of the timed-out task ('' for 'retry')
--
-- Returns {'OK', attempt of the new task, workflow type}, {'STALE'} when the task
-- already moved on, or {'GONE'} when another process already fired this timer.
--!include lib/common.lua

if redis.call('ZREM', KEYS[4], ARGV[1]) == 0 then
  return {'GONE'}
end
local run = redis.call('HMGET', KEYS[1], 'status', 'wft', 'wft_entry', 'wft_attempt',
  'workflow_id', 'run_id', 'workflow_type')
if run[1] ~= 'RUNNING' then
  return {'STALE'}
end

local attempt = tonumber(run[4])
if ARGV[2] == 'timeout' then
  if run[2] ~= 'running' or run[3] ~= ARGV[3] then
    return {'STALE'}
  end
  append_event(KEYS[1], KEYS[2], 'WorkflowTaskTimedOut', '{"attempt":' .. attempt .. '}',
    now_ms())
  attempt = attempt + 1
  redis.call('HSET', KEYS[1], 'wft_attempt', attempt)
elseif run[2] ~= 'backoff' then
  return {'STALE'}
end
redis.call('HSET', KEYS[1], 'wft_timer', '')
dispatch_workflow_task(KEYS[1], KEYS[3], run[5], run[6])
return {'OK', attempt, run[7]}
