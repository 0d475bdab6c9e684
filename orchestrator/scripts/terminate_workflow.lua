-- Terminate a running run at once, without running any of its code.
--
-- KEYS[1] workflow pointer hash
-- KEYS[2] run hash
-- KEYS[3] history stream
-- KEYS[4] children hash of the run
-- KEYS[5] due-time set (timers) of the shard
-- KEYS[6] visibility summaries of the shard
-- KEYS[7] visibility index by close time of the shard
-- KEYS[8] visibility index of the shard's open runs
-- KEYS[9] visibility index of the shard's runs closed TERMINATED
-- KEYS[10] counters of runs started and closed, of the shard
-- ARGV[1] run id
-- ARGV[2] WorkflowExecutionTerminated attrs JSON ({"reason", "identity"})
--
-- Returns {'OK'} or {'NOT_RUNNING', status}.
--!include lib/common.lua
--!include lib/visibility.lua
--!include lib/close.lua

local status = redis.call('HGET', KEYS[2], 'status')
if status ~= 'RUNNING' then
  return {'NOT_RUNNING', status or ''}
end
-- Only the id's current run can be running (a start never leaves an older one
-- running), so the pointer follows this run.
terminate_run(KEYS[2], KEYS[3], KEYS[1], KEYS[4], KEYS[5], {runs = KEYS[6], close = KEYS[7], open = KEYS[8],
  by_status = {TERMINATED = KEYS[9]}, stats = KEYS[10]},
  ARGV[2], now_ms())
return {'OK'}
