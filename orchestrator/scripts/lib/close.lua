-- What happens whenever a run closes, however it closes. Needs lib/common.lua and
-- lib/visibility.lua.
-- Timers the run left in the due-time set are not removed here: each is refused
-- when it fires, since the run is no longer RUNNING.

-- Queue the follow-ups of a closed run as timers due now, each fired by a worker
-- as its own transition on the shard it concerns: telling the parent that this
-- child closed, and applying this run's parent-close policy to its open children.
local function on_run_closed(run_key, children_key, timers_key, vis, workflow_id, run_id,
                             status, now)
  index_closed(vis, run_id, status, now)
  -- A run continued as new is not over for its parent: the next run carries on.
  local notify_parent = status ~= 'CONTINUED_AS_NEW'
  if notify_parent and redis.call('HEXISTS', run_key, 'parent') == 1 then
    redis.call('ZADD', timers_key, now,
      cjson.encode({'child_closed', workflow_id, run_id, 0, '', '', ''}))
  end
  local children = redis.call('HGETALL', children_key)
  for i = 1, #children, 2 do
    local child = cjson.decode(children[i + 1])
    if child.status ~= 'closed' and child.policy ~= 'abandon' then
      redis.call('ZADD', timers_key, now, cjson.encode(
        {'parent_closed', workflow_id, run_id, tonumber(children[i]), '', '', ''}))
    end
  end
end

-- End a running run at once: record why, and mark it closed so that its queued
-- tasks, timers and activity results are refused from now on.
local function terminate_run(run_key, history_key, pointer_key, children_key, timers_key, vis,
                             attrs_json, now)
  append_event(run_key, history_key, 'WorkflowExecutionTerminated', attrs_json, now)
  local reason = cjson.decode(attrs_json).reason
  if not reason or reason == '' then reason = 'workflow terminated' end
  redis.call('HSET', run_key, 'status', 'TERMINATED', 'closed_at', now,
    'wft', '', 'wft_pending', '', 'wft_timer', '',
    'failure', cjson.encode({type = 'Terminated', message = reason}))
  redis.call('HSET', pointer_key, 'status', 'TERMINATED')
  local ids = redis.call('HMGET', run_key, 'workflow_id', 'run_id')
  on_run_closed(run_key, children_key, timers_key, vis, ids[1], ids[2], 'TERMINATED', now)
end
