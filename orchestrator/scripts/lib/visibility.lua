-- Visibility: one JSON summary per run and, per shard, indexes of run ids by start
-- time (all runs, open runs, runs of one type, runs of one task queue) and by close
-- time. Kept by the scripts that start and close runs, so a listing always agrees
-- with the runs' own state and never scans keys. ``vis`` holds the keys:
-- {runs, start, close, open, type, queue, by_status, stats} (type and queue only when
-- starting; by_status maps each status the script may close a run with to the index
-- of closed runs with that status, by start time; stats counts runs started per type
-- and closed per type and status, for the metrics exporter).

local function index_started(vis, workflow_id, run_id, workflow_type, task_queue, now)
  redis.call('HSET', vis.runs, run_id, cjson.encode({workflow_id = workflow_id,
    run_id = run_id, workflow_type = workflow_type, task_queue = task_queue,
    status = 'RUNNING', start_time = now}))
  for _, index in ipairs({vis.start, vis.open, vis.type, vis.queue}) do
    redis.call('ZADD', index, now, run_id)
  end
  redis.call('HINCRBY', vis.stats, 'started|' .. workflow_type, 1)
end

local function index_closed(vis, run_id, status, now)
  redis.call('ZADD', vis.close, now, run_id)
  redis.call('ZREM', vis.open, run_id)
  local raw = redis.call('HGET', vis.runs, run_id)
  if not raw then return end
  local summary = cjson.decode(raw)
  local by_status = vis.by_status and vis.by_status[status]
  if by_status then
    redis.call('ZADD', by_status, summary.start_time, run_id)
  end
  redis.call('HINCRBY', vis.stats, 'closed|' .. summary.workflow_type .. '|' .. status, 1)
  summary.status = status
  summary.close_time = now
  redis.call('HSET', vis.runs, run_id, cjson.encode(summary))
end
