-- Start a workflow run: record WorkflowExecutionStarted and queue its first task.
-- Also signal-with-start, and the workflow id policies for an id already in use.
--
-- KEYS[1] workflow pointer hash   ns:{s}:wf:<workflow id>
-- KEYS[2] run hash                ns:{s}:run:<run id>
-- KEYS[3] history stream          ns:{s}:run:<run id>:history
-- KEYS[4] workflow task stream    ns:{s}:q:<task queue>:wf
-- KEYS[5] run hash of the id's current run, as the caller last saw it (or KEYS[2])
-- KEYS[6] history stream of that run (or KEYS[3])
-- KEYS[7] workflow task stream of that run's task queue (or KEYS[4])
-- KEYS[8] due-time set (timers) of the shard
-- KEYS[9] children hash of the run KEYS[5]
-- KEYS[10] visibility summaries of the shard
-- KEYS[11] visibility index by start time of the shard
-- KEYS[12] visibility index by close time of the shard
-- KEYS[13] visibility index of the shard's open runs
-- KEYS[14] visibility index of the shard's runs of this workflow type
-- KEYS[15] visibility index of the shard's runs on this task queue
-- KEYS[16] visibility index of the shard's runs closed TERMINATED
-- KEYS[17] counters of runs started and closed, of the shard
-- KEYS[18] task queues runs of the shard were started on
-- ARGV[1] workflow id
-- ARGV[2] run id of the new run
-- ARGV[3] workflow type
-- ARGV[4] task queue
-- ARGV[5] attrs of WorkflowExecutionStarted (JSON object, includes the input)
-- ARGV[6] attrs of WorkflowExecutionSignaled for signal-with-start, or ''
-- ARGV[7] run id the caller saw as current (KEYS[5]), or ''
-- ARGV[8] id conflict policy when a run is running: 'fail', 'use_existing',
--         'terminate_existing'
-- ARGV[9] id reuse policy when the last run is closed: 'allow_duplicate',
--         'allow_duplicate_failed_only', 'reject_duplicate'
-- ARGV[10] run timeout ms (0: none)
-- ARGV[11] execution timeout ms, across continue-as-new (0: none)
-- ARGV[12] timer member that times the new run out
-- ARGV[13] the parent, when started as a child workflow: JSON {"workflow_id", "run_id",
--          "seq", "task_queue"}, or ''
--
-- Returns {'OK', run id, start time ms}
--      or {'ALREADY_STARTED', run id of the running run}   (policy 'fail')
--      or {'EXISTING', run id of the running run}          ('use_existing', or signalled)
--      or {'REJECTED', status of the last run}             (reuse policy)
--      or {'RACE', current run id}: the current run is not the one the caller saw;
--         nothing was changed, look again and retry.
--!include lib/common.lua
--!include lib/visibility.lua
--!include lib/close.lua

local current = redis.call('HMGET', KEYS[1], 'run_id', 'status')
local now = now_ms()
local vis = {runs = KEYS[10], start = KEYS[11], close = KEYS[12], open = KEYS[13],
  type = KEYS[14], queue = KEYS[15], by_status = {TERMINATED = KEYS[16]},
  stats = KEYS[17]}

-- Starting a run id that already exists is a repeat (a child's start retried
-- after its starter died): never start it twice.
if current[1] == ARGV[2] then
  return {'EXISTING', current[1]}
end

if current[2] == 'RUNNING' then
  local policy = ARGV[8]
  if policy == 'fail' and ARGV[6] == '' then
    return {'ALREADY_STARTED', current[1]}
  end
  if current[1] ~= ARGV[7] then
    return {'RACE', current[1]}
  end
  if ARGV[6] ~= '' then
    append_event(KEYS[5], KEYS[6], 'WorkflowExecutionSignaled', ARGV[6], now)
    schedule_workflow_task(KEYS[5], KEYS[7], ARGV[1], current[1])
    return {'EXISTING', current[1]}
  end
  if policy == 'use_existing' then
    return {'EXISTING', current[1]}
  end
  terminate_run(KEYS[5], KEYS[6], KEYS[1], KEYS[9], KEYS[8], vis,
    cjson.encode({reason = 'terminated to start run ' .. ARGV[2], identity = 'start'}), now)
elseif current[2] then
  local reuse = ARGV[9]
  local failed = {FAILED = true, TERMINATED = true, CANCELED = true, TIMED_OUT = true}
  if reuse == 'reject_duplicate' or
      (reuse == 'allow_duplicate_failed_only' and not failed[current[2]]) then
    return {'REJECTED', current[2]}
  end
end

redis.call('HSET', KEYS[1], 'run_id', ARGV[2], 'status', 'RUNNING', 'task_queue', ARGV[4])
redis.call('HSET', KEYS[2],
  'workflow_id', ARGV[1], 'run_id', ARGV[2], 'workflow_type', ARGV[3],
  'task_queue', ARGV[4], 'status', 'RUNNING', 'started_at', now,
  'last_event_id', 0, 'wft_attempt', 1)
if ARGV[13] ~= '' then
  redis.call('HSET', KEYS[2], 'parent', ARGV[13])
end
append_event(KEYS[2], KEYS[3], 'WorkflowExecutionStarted', ARGV[5], now)
index_started(vis, ARGV[1], ARGV[2], ARGV[3], ARGV[4], now)
redis.call('SADD', KEYS[18], ARGV[4])
if ARGV[6] ~= '' then
  append_event(KEYS[2], KEYS[3], 'WorkflowExecutionSignaled', ARGV[6], now)
end
dispatch_workflow_task(KEYS[2], KEYS[4], ARGV[1], ARGV[2])
local run_ms, exec_ms = tonumber(ARGV[10]), tonumber(ARGV[11])
arm_run_timeout(KEYS[2], KEYS[8], ARGV[12], run_ms, exec_ms > 0 and now + exec_ms or 0, now)
return {'OK', ARGV[2], now}
