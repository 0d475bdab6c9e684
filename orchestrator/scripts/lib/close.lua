-- Closing a run from outside its code (termination). Needs lib/common.lua.
-- Timers the run left in the due-time set are not removed here: each is refused
-- when it fires, since the run is no longer RUNNING.

-- End a running run at once: record why, and mark it closed so that its queued
-- tasks, timers and activity results are refused from now on.
local function terminate_run(run_key, history_key, pointer_key, attrs_json, now)
  append_event(run_key, history_key, 'WorkflowExecutionTerminated', attrs_json, now)
  redis.call('HSET', run_key, 'status', 'TERMINATED', 'closed_at', now,
    'wft', '', 'wft_pending', '', 'wft_timer', '')
  redis.call('HSET', pointer_key, 'status', 'TERMINATED')
end
