-- The end of a failed or timed-out activity attempt: either a retry waits in
-- the due-time set, or the activity fails for good and the workflow is told.
-- Needs lib/common.lua.

-- The state of a running attempt that is still current and whose run is open, or
-- nil: a report from any other attempt (timed out, retried, cancelled) is refused.
local function current_attempt(act_key, run_key, entry)
  local act = redis.call('HMGET', act_key, 'status', 'entry', 'seq', 'attempt',
    'cancel_requested')
  if act[1] ~= 'running' or act[2] ~= entry then return nil end
  if redis.call('HGET', run_key, 'status') ~= 'RUNNING' then return nil end
  return {seq = act[3], attempt = act[4], cancel_requested = act[5] == '1'}
end

-- Delay in ms before the next attempt, or -1 when the policy allows no retry.
local function retry_delay(policy, attempt, failure_type, non_retryable, rand, interrupted)
  -- An attempt its worker gave up on while shutting down failed through no fault of
  -- its own: it runs again at once elsewhere, whatever the policy's limits.
  if interrupted then return 0 end
  if non_retryable then return -1 end
  if policy.maximum_attempts > 0 and attempt >= policy.maximum_attempts then return -1 end
  for _, t in ipairs(policy.non_retryable) do
    if t == failure_type then return -1 end
  end
  local delay = policy.initial_ms * policy.coefficient ^ (attempt - 1)
  if delay > policy.maximum_ms then delay = policy.maximum_ms end
  return math.floor(delay * (1 + policy.jitter * (2 * rand - 1)))
end

-- Close the activity for good: one history event, its timers and state removed,
-- and a workflow task so the workflow code sees the outcome.
local function close_activity(act_key, run_key, history_key, wft_stream, timers_key,
                              event_type, attrs_json, now)
  for _, field in ipairs({'stc_timer', 'hb_timer', 's2c_timer', 's2s_timer', 'retry_timer'}) do
    clear_timer(act_key, field, timers_key)
  end
  local ids = redis.call('HMGET', act_key, 'w', 'r')
  redis.call('DEL', act_key)
  append_event(run_key, history_key, event_type, attrs_json, now)
  schedule_workflow_task(run_key, wft_stream, ids[1], ids[2])
end

-- Returns the delay of the scheduled retry in ms, or -1 if the activity closed.
-- ``interrupted`` (optional) marks an attempt cut short by its worker's shutdown.
-- Every failed attempt is recorded (ActivityTaskAttemptFailed), which makes retries
-- visible in the history but lets it grow with them when attempts are unlimited.
local function end_attempt(act_key, run_key, history_key, wft_stream, timers_key,
                           failure_json, failure_type, non_retryable, rand, retry_member,
                           final_event, now, interrupted)
  local a = redis.call('HMGET', act_key, 'seq', 'attempt', 'retry', 'deadline')
  local seq, attempt = a[1], tonumber(a[2])
  local delay = retry_delay(cjson.decode(a[3]), attempt, failure_type, non_retryable, rand,
    interrupted)
  local deadline = tonumber(a[4]) or 0
  if delay >= 0 and deadline > 0 and now + delay >= deadline then delay = -1 end

  if delay < 0 then
    close_activity(act_key, run_key, history_key, wft_stream, timers_key, final_event,
      '{"seq":' .. seq .. ',"attempt":' .. attempt .. ',"failure":' .. failure_json .. '}', now)
    return -1
  end

  clear_timer(act_key, 'stc_timer', timers_key)
  clear_timer(act_key, 'hb_timer', timers_key)
  redis.call('HSET', act_key, 'status', 'backoff', 'entry', '', 'stc_timer', '', 'hb_timer', '',
    'retry_timer', retry_member)
  redis.call('ZADD', timers_key, now + delay, retry_member)
  append_event(run_key, history_key, 'ActivityTaskAttemptFailed',
    '{"seq":' .. seq .. ',"attempt":' .. attempt .. ',"retry_at":' .. (now + delay) ..
    ',"failure":' .. failure_json .. '}', now)
  return delay
end
