-- Record in the parent how starting one of its child workflows went. The child
-- was started (or refused) on its own shard just before; this is the parent's side.
--
-- KEYS[1] children hash of the parent run
-- KEYS[2] parent run hash
-- KEYS[3] parent history stream
-- KEYS[4] workflow task stream of the parent's task queue
-- KEYS[5] due-time set (timers) of the parent's shard
-- ARGV[1] timer member that asked for the start
-- ARGV[2] child seq
-- ARGV[3] 'started' or 'failed'
-- ARGV[4] the child's run id
-- ARGV[5] why the start failed ('failed' only)
--
-- Returns {'OK'}, {'STALE'} when the child is no longer waiting to start, or
-- {'GONE'} when another process already recorded it.
--!include lib/common.lua

if redis.call('ZREM', KEYS[5], ARGV[1]) == 0 then
  return {'GONE'}
end
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return {'STALE'} end
local child = cjson.decode(raw)
if child.status ~= 'initiated' then return {'STALE'} end

local started = ARGV[3] == 'started'
child.status = started and 'started' or 'closed'
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(child))
local parent = redis.call('HMGET', KEYS[2], 'status', 'workflow_id', 'run_id')
if parent[1] ~= 'RUNNING' then return {'OK'} end
if started then
  append_event(KEYS[2], KEYS[3], 'ChildWorkflowExecutionStarted', cjson.encode(
    {seq = tonumber(ARGV[2]), workflow_id = child.workflow_id, run_id = ARGV[4]}), now_ms())
else
  append_event(KEYS[2], KEYS[3], 'StartChildWorkflowExecutionFailed', cjson.encode(
    {seq = tonumber(ARGV[2]), workflow_id = child.workflow_id, cause = ARGV[5]}), now_ms())
end
schedule_workflow_task(KEYS[2], KEYS[4], parent[2], parent[3])
return {'OK'}
