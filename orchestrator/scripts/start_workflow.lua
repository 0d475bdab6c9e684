-- Start a workflow run: record WorkflowExecutionStarted and queue its first task.
--
-- KEYS[1] workflow pointer hash   ns:{s}:wf:<workflow id>
-- KEYS[2] run hash                ns:{s}:run:<run id>
-- KEYS[3] history stream          ns:{s}:run:<run id>:history
-- KEYS[4] workflow task stream    ns:{s}:q:<task queue>:wf
-- ARGV[1] workflow id
-- ARGV[2] run id
-- ARGV[3] workflow type
-- ARGV[4] task queue
-- ARGV[5] attrs of WorkflowExecutionStarted (JSON object, includes the input)
--
-- Returns {'OK', run id, start time ms}
--      or {'ALREADY_STARTED', run id of the running run}
--!include lib/common.lua

local current = redis.call('HMGET', KEYS[1], 'run_id', 'status')
if current[2] == 'RUNNING' then
  return {'ALREADY_STARTED', current[1]}
end

local now = now_ms()
redis.call('HSET', KEYS[1], 'run_id', ARGV[2], 'status', 'RUNNING')
redis.call('HSET', KEYS[2],
  'workflow_id', ARGV[1], 'run_id', ARGV[2], 'workflow_type', ARGV[3],
  'task_queue', ARGV[4], 'status', 'RUNNING', 'started_at', now,
  'last_event_id', 0, 'wft_attempt', 1)
append_event(KEYS[2], KEYS[3], 'WorkflowExecutionStarted', ARGV[5], now)
dispatch_workflow_task(KEYS[2], KEYS[4], ARGV[1], ARGV[2])
return {'OK', ARGV[2], now}
