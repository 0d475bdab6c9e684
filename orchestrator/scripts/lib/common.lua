-- Helpers shared by the state-transition scripts. The loader (scripts.py)
-- pastes this file where a script says `--!include lib/common.lua`, once, when
-- the scripts are loaded; nothing is assembled per call.

-- Server time in milliseconds: one clock for every worker, whatever their skew.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Append one event to a run's history. Event ids count 1, 2, 3, ... and double
-- as stream ids 0-1, 0-2, ..., so a reader can resume after any event id.
local function append_event(run_key, history_key, event_type, attrs_json, ts)
  local id = redis.call('HINCRBY', run_key, 'last_event_id', 1)
  local body = '{"id":' .. id .. ',"type":"' .. event_type .. '","ts":' .. ts ..
    ',"attrs":' .. attrs_json .. '}'
  redis.call('XADD', history_key, '0-' .. id, 'event', body)
  return id
end

-- Put a new workflow task on the queue; its stream entry id is the task's identity.
local function dispatch_workflow_task(run_key, wft_stream, workflow_id, run_id)
  local entry = redis.call('XADD', wft_stream, '*', 'w', workflow_id, 'r', run_id)
  redis.call('HSET', run_key, 'wft', 'scheduled', 'wft_entry', entry, 'wft_pending', '')
  return entry
end

-- At most one workflow task per run is outstanding. An event that arrives while
-- one is queued is seen by it; one that arrives while one runs marks the run so
-- that exactly one follow-up task is dispatched when the running one completes.
local function schedule_workflow_task(run_key, wft_stream, workflow_id, run_id)
  local state = redis.call('HGET', run_key, 'wft')
  if state == 'running' or state == 'backoff' then
    redis.call('HSET', run_key, 'wft_pending', '1')
  elseif state ~= 'scheduled' then
    dispatch_workflow_task(run_key, wft_stream, workflow_id, run_id)
  end
end

-- Remove a timer whose member string is stored in a hash field, if any.
local function clear_timer(hash_key, field, timers_key)
  local member = redis.call('HGET', hash_key, field)
  if member and member ~= '' then
    redis.call('ZREM', timers_key, member)
  end
end

-- Time a run out at the earlier of its own run timeout and the execution deadline
-- (which spans continue-as-new); remember both so that a successor inherits them.
local function arm_run_timeout(run_key, timers_key, member, run_ms, exec_deadline, now)
  local deadline = exec_deadline
  if run_ms > 0 and (deadline == 0 or now + run_ms < deadline) then
    deadline = now + run_ms
  end
  redis.call('HSET', run_key, 'run_timeout_ms', run_ms, 'exec_deadline', exec_deadline)
  if deadline > 0 then
    redis.call('HSET', run_key, 'timeout_timer', member)
    redis.call('ZADD', timers_key, deadline, member)
  end
end
