-- Complete a running workflow task and apply the commands the workflow code issued.
--
-- KEYS[1] run hash
-- KEYS[2] history stream
-- KEYS[3] workflow task stream of the run's task queue
-- KEYS[4] due-time set (timers) of the shard
-- KEYS[5] workflow pointer hash
-- KEYS[6] children hash of the run
-- KEYS[7] visibility summaries of the shard
-- KEYS[8] visibility index by start time of the shard
-- KEYS[9] visibility index by close time of the shard
-- KEYS[10] visibility index of the shard's open runs
-- KEYS[11] visibility index of the shard's runs of this workflow type
-- KEYS[12] visibility index of the shard's runs on this task queue
-- KEYS[13..16] visibility indexes of the shard's runs closed COMPLETED, FAILED, CANCELED,
--              CONTINUED_AS_NEW
-- KEYS[17] counters of runs started and closed, of the shard
-- KEYS[18...] two per 'activity', 'cancel_activity' and 'continue' command, in command
--            order: activity hash and activity task stream; or, for 'continue', the
--            new run's hash and history stream
-- ARGV[1] stream entry id of the task (must be the current workflow task)
-- ARGV[2] worker id
-- ARGV[3] consumer group
-- ARGV[4...] commands, each a type followed by its arguments:
--   'activity', seq, task JSON, retry policy JSON,
--               schedule-to-close ms (0: none), schedule-to-close timer member,
--               schedule-to-start ms (0: none), schedule-to-start timer member,
--               ActivityTaskScheduled attrs JSON
--   'cancel_activity', seq, ActivityTaskCancelRequested attrs JSON
--   'timer',    seq, duration ms, timer member
--   'cancel_timer', seq, timer member
--   'complete', WorkflowExecutionCompleted attrs JSON, result JSON
--   'fail',     WorkflowExecutionFailed attrs JSON, failure JSON
--   'cancel',   WorkflowExecutionCanceled attrs JSON
--   'continue', new run id, WorkflowExecutionContinuedAsNew attrs JSON,
--               the new run's WorkflowExecutionStarted attrs JSON,
--               timer member that times the new run out
--   'marker',   MarkerRecorded attrs JSON
--   'child',    seq, child state JSON, StartChildWorkflowExecutionInitiated attrs JSON,
--               timer member that starts the child
--
-- Returns {'OK', 1 if the run closed else 0, Redis time ms}
--      or {'NEW_EVENTS'} when the commands would close the run but events arrived
--         while the task ran: the task is recorded as failed and a new one queued
--      or {'STALE'} when this task is no longer current: nothing is changed.
--!include lib/common.lua
--!include lib/activity.lua
--!include lib/visibility.lua
--!include lib/close.lua

local run, history, wft_stream, timers = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local state = redis.call('HMGET', run, 'status', 'wft', 'wft_entry', 'workflow_id', 'run_id')
if state[1] ~= 'RUNNING' or state[2] ~= 'running' or state[3] ~= ARGV[1] then
  return {'STALE'}
end
local workflow_id, run_id = state[4], state[5]
local vis = {runs = KEYS[7], start = KEYS[8], close = KEYS[9], open = KEYS[10],
  type = KEYS[11], queue = KEYS[12], by_status = {COMPLETED = KEYS[13], FAILED = KEYS[14],
  CANCELED = KEYS[15], CONTINUED_AS_NEW = KEYS[16]}, stats = KEYS[17]}

-- Validate every command before the first write: a script that errors half-way
-- would leave its earlier writes in place.
local sizes = {activity = 9, cancel_activity = 3, timer = 4, cancel_timer = 3, complete = 3,
  fail = 3, cancel = 2, continue = 5, marker = 2, child = 5}
local closes = {complete = true, fail = true, cancel = true, continue = true}
local j, closing = 4, false
while j <= #ARGV do
  local size = sizes[ARGV[j]]
  if not size then
    return redis.error_reply('ERR unknown workflow command ' .. tostring(ARGV[j]))
  end
  closing = closing or closes[ARGV[j]] ~= nil
  j = j + size
end

local now = now_ms()
clear_timer(run, 'wft_timer', timers)

-- The code decided to close the run without seeing events that arrived while it
-- ran (a signal, an activity result): refuse, and let a new task show them to it.
if closing and redis.call('HGET', run, 'wft_pending') == '1' then
  append_event(run, history, 'WorkflowTaskFailed', '{"worker":' .. cjson.encode(ARGV[2]) ..
    ',"cause":"UNHANDLED_NEW_EVENTS","failure":{"type":"UnhandledNewEvents",' ..
    '"message":"new events arrived while the workflow task ran"}}', now)
  dispatch_workflow_task(run, wft_stream, workflow_id, run_id)
  return {'NEW_EVENTS'}
end

append_event(run, history, 'WorkflowTaskCompleted', cjson.encode({worker = ARGV[2]}), now)

local function close_run(status, event_type, attrs, field, value)
  clear_timer(run, 'timeout_timer', timers)
  append_event(run, history, event_type, attrs, now)
  redis.call('HSET', run, 'status', status, 'closed_at', now, field, value,
    'wft', '', 'wft_pending', '', 'wft_timer', '')
  redis.call('HSET', KEYS[5], 'status', status)
  on_run_closed(run, KEYS[6], timers, vis, workflow_id, run_id, status, now)
end

local function schedule_activity(act, stream, i)
  local seq, task = ARGV[i + 1], ARGV[i + 2]
  local s2c_ms, s2s_ms = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 6])
  local entry = redis.call('XADD', stream, '*',
    'w', workflow_id, 'r', run_id, 's', seq, 'a', 1, 't', task)
  redis.call('HSET', act, 'w', workflow_id, 'r', run_id, 'seq', seq, 'attempt', 1,
    'status', 'scheduled', 'entry', entry, 'task', task, 'retry', ARGV[i + 3],
    'scheduled_at', now, 'deadline', s2c_ms > 0 and now + s2c_ms or 0,
    's2s_ms', s2s_ms)
  if s2c_ms > 0 then
    redis.call('HSET', act, 's2c_timer', ARGV[i + 5])
    redis.call('ZADD', timers, now + s2c_ms, ARGV[i + 5])
  end
  if s2s_ms > 0 then
    redis.call('HSET', act, 's2s_timer', ARGV[i + 7])
    redis.call('ZADD', timers, now + s2s_ms, ARGV[i + 7])
  end
  append_event(run, history, 'ActivityTaskScheduled', ARGV[i + 8], now)
end

-- Cancel at once what has not started; ask a running attempt to stop (it learns
-- of it when it heartbeats) and let it report how it ended.
-- A queued attempt's stream entry stays: the worker that reads it drops it as stale.
-- Deleting an entry no worker has read yet leaves the consumer group's lag (XINFO
-- GROUPS, which autoscalers read) wrong for good on Redis releases before mid-2024.
local function cancel_activity(act, _stream, i)
  append_event(run, history, 'ActivityTaskCancelRequested', ARGV[i + 2], now)
  local a = redis.call('HMGET', act, 'status', 'entry', 'seq', 'attempt')
  if a[1] == 'scheduled' or a[1] == 'backoff' then
    close_activity(act, run, history, wft_stream, timers, 'ActivityTaskCanceled',
      '{"seq":' .. a[3] .. ',"attempt":' .. a[4] .. '}', now)
  elseif a[1] == 'running' then
    redis.call('HSET', act, 'cancel_requested', '1')
  end
end

-- Close this run and start the next one of the same workflow id, with a fresh history.
local function continue_as_new(new_run, new_history, i)
  local new_run_id = ARGV[i + 1]
  local state = redis.call('HMGET', run, 'workflow_type', 'task_queue', 'run_timeout_ms',
    'exec_deadline', 'parent')
  close_run('CONTINUED_AS_NEW', 'WorkflowExecutionContinuedAsNew', ARGV[i + 2],
    'continued_to', new_run_id)
  redis.call('HSET', KEYS[5], 'run_id', new_run_id, 'status', 'RUNNING')
  redis.call('HSET', new_run, 'workflow_id', workflow_id, 'run_id', new_run_id,
    'workflow_type', state[1], 'task_queue', state[2], 'status', 'RUNNING',
    'started_at', now, 'last_event_id', 0, 'wft_attempt', 1, 'continued_from', run_id)
  if state[5] then
    redis.call('HSET', new_run, 'parent', state[5])
  end
  append_event(new_run, new_history, 'WorkflowExecutionStarted', ARGV[i + 3], now)
  index_started(vis, workflow_id, new_run_id, state[1], state[2], now)
  dispatch_workflow_task(new_run, wft_stream, workflow_id, new_run_id)
  arm_run_timeout(new_run, timers, ARGV[i + 4], tonumber(state[3] or 0),
    tonumber(state[4] or 0), now)
end

local i, k, closed = 4, 18, false
while i <= #ARGV do
  local kind = ARGV[i]
  if kind == 'activity' then
    schedule_activity(KEYS[k], KEYS[k + 1], i)
    k = k + 2
  elseif kind == 'cancel_activity' then
    cancel_activity(KEYS[k], KEYS[k + 1], i)
    k = k + 2
  elseif kind == 'timer' then
    local fire_at = now + tonumber(ARGV[i + 2])
    redis.call('ZADD', timers, fire_at, ARGV[i + 3])
    append_event(run, history, 'TimerStarted', '{"seq":' .. ARGV[i + 1] .. ',"duration_ms":' ..
      ARGV[i + 2] .. ',"fire_at":' .. fire_at .. '}', now)
  elseif kind == 'cancel_timer' then
    redis.call('ZREM', timers, ARGV[i + 2])
    append_event(run, history, 'TimerCanceled', '{"seq":' .. ARGV[i + 1] .. '}', now)
  elseif kind == 'complete' then
    close_run('COMPLETED', 'WorkflowExecutionCompleted', ARGV[i + 1], 'result', ARGV[i + 2])
    closed = true
  elseif kind == 'fail' then
    close_run('FAILED', 'WorkflowExecutionFailed', ARGV[i + 1], 'failure', ARGV[i + 2])
    closed = true
  elseif kind == 'child' then
    -- The child starts on its own shard: a worker fires this timer to start it.
    redis.call('HSET', KEYS[6], ARGV[i + 1], ARGV[i + 2])
    redis.call('ZADD', timers, now, ARGV[i + 4])
    append_event(run, history, 'StartChildWorkflowExecutionInitiated', ARGV[i + 3], now)
  elseif kind == 'marker' then
    append_event(run, history, 'MarkerRecorded', ARGV[i + 1], now)
  elseif kind == 'continue' then
    continue_as_new(KEYS[k], KEYS[k + 1], i)
    k, closed = k + 2, true
  else -- 'cancel'
    close_run('CANCELED', 'WorkflowExecutionCanceled', ARGV[i + 1], 'failure',
      '{"type":"CancelledError","message":"workflow canceled"}')
    closed = true
  end
  i = i + sizes[kind]
end

if not closed then
  if redis.call('HGET', run, 'wft_pending') == '1' then
    dispatch_workflow_task(run, wft_stream, workflow_id, run_id)
  else
    redis.call('HSET', run, 'wft', '', 'wft_timer', '')
  end
  redis.call('HSET', run, 'wft_attempt', 1)
end
return {'OK', closed and 1 or 0, now}
