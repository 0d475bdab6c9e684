-- Deliver a signal to a running workflow run: record it and queue a workflow task.
-- Signals are recorded in the order they arrive, and each reaches the code once.
--
-- KEYS[1] workflow pointer hash
-- KEYS[2] run hash of the run the caller believes is current
-- KEYS[3] history stream of that run
-- KEYS[4] workflow task stream of the run's task queue
-- ARGV[1] run id of that run
-- ARGV[2] WorkflowExecutionSignaled attrs JSON ({"name", "input"})
--
-- Returns {'OK', event id}, or {'NOT_RUNNING', status} when that run is closed,
-- or {'MOVED', current run id} when another run of the id is now current.
--!include lib/common.lua

local current = redis.call('HGET', KEYS[1], 'run_id')
if current ~= ARGV[1] then
  return {'MOVED', current or ''}
end
local run = redis.call('HMGET', KEYS[2], 'status', 'workflow_id')
if run[1] ~= 'RUNNING' then
  return {'NOT_RUNNING', run[1] or ''}
end
local id = append_event(KEYS[2], KEYS[3], 'WorkflowExecutionSignaled', ARGV[2], now_ms())
schedule_workflow_task(KEYS[2], KEYS[4], run[2], ARGV[1])
return {'OK', id}
