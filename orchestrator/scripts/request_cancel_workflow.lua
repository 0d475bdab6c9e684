-- Ask a running workflow run to cancel: its code sees a CancelledError at its
-- next await and may clean up before it finishes. Asking twice is harmless.
--
-- KEYS[1] run hash
-- KEYS[2] history stream
-- KEYS[3] workflow task stream of the run's task queue
-- ARGV[1] WorkflowExecutionCancelRequested attrs JSON ({"reason"})
--
-- Returns {'OK'}, {'ALREADY_REQUESTED'} or {'NOT_RUNNING', status}.
--!include lib/common.lua

local run = redis.call('HMGET', KEYS[1], 'status', 'cancel_requested', 'workflow_id', 'run_id')
if run[1] ~= 'RUNNING' then
  return {'NOT_RUNNING', run[1] or ''}
end
if run[2] == '1' then
  return {'ALREADY_REQUESTED'}
end
redis.call('HSET', KEYS[1], 'cancel_requested', '1')
append_event(KEYS[1], KEYS[2], 'WorkflowExecutionCancelRequested', ARGV[1], now_ms())
schedule_workflow_task(KEYS[1], KEYS[3], run[3], run[4])
return {'OK'}
