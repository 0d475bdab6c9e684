-- Visibility: one JSON summary per run and two time indexes per shard, kept by
-- the scripts that start and close runs, so a listing always agrees with the
-- runs' own state and never scans keys.

local function index_started(vis_runs, vis_start, workflow_id, run_id, workflow_type,
                             task_queue, now)
  redis.call('HSET', vis_runs, run_id, cjson.encode({workflow_id = workflow_id,
    run_id = run_id, workflow_type = workflow_type, task_queue = task_queue,
    status = 'RUNNING', start_time = now}))
  redis.call('ZADD', vis_start, now, run_id)
end

local function index_closed(vis_runs, vis_close, run_id, status, now)
  local raw = redis.call('HGET', vis_runs, run_id)
  if raw then
    local summary = cjson.decode(raw)
    summary.status = status
    summary.close_time = now
    redis.call('HSET', vis_runs, run_id, cjson.encode(summary))
  end
  redis.call('ZADD', vis_close, now, run_id)
end
