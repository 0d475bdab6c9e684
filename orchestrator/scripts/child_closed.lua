-- Tell a parent run that one of its child workflows closed, with its outcome.
--
-- KEYS[1] children hash of the parent run
-- KEYS[2] parent run hash
-- KEYS[3] parent history stream
-- KEYS[4] workflow task stream of the parent's task queue
-- ARGV[1] child seq
-- ARGV[2] the child's workflow id
-- ARGV[3] the child's closing status (COMPLETED, FAILED, CANCELED, TERMINATED, TIMED_OUT)
-- ARGV[4] result JSON (COMPLETED) or failure JSON (otherwise)
--
-- Returns {'OK'}, {'NOT_STARTED'} when the parent has not yet recorded the child's
-- start (try again later), or {'STALE'} when there is nothing (more) to record.
--!include lib/common.lua

local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'STALE'} end
local child = cjson.decode(raw)
if child.workflow_id ~= ARGV[2] or child.status == 'closed' then return {'STALE'} end
if child.status == 'initiated' then return {'NOT_STARTED'} end

child.status = 'closed'
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(child))
local parent = redis.call('HMGET', KEYS[2], 'status', 'workflow_id', 'run_id')
if parent[1] ~= 'RUNNING' then return {'OK'} end
local now = now_ms()
if ARGV[3] == 'COMPLETED' then
  append_event(KEYS[2], KEYS[3], 'ChildWorkflowExecutionCompleted',
    '{"seq":' .. ARGV[1] .. ',"result":' .. ARGV[4] .. '}', now)
else
  append_event(KEYS[2], KEYS[3], 'ChildWorkflowExecutionFailed',
    '{"seq":' .. ARGV[1] .. ',"status":"' .. ARGV[3] .. '","failure":' .. ARGV[4] .. '}', now)
end
schedule_workflow_task(KEYS[2], KEYS[4], parent[2], parent[3])
return {'OK'}
