-- Remove a closed run whose retention period is over: its state, history,
-- children, visibility entries, and the workflow pointer if it still points here.
--
-- KEYS[1] run hash
-- KEYS[2] history stream
-- KEYS[3] children hash of the run
-- KEYS[4] workflow pointer hash
-- KEYS[5] visibility summaries of the shard
-- KEYS[6] visibility index by start time of the shard
-- KEYS[7] visibility index by close time of the shard
-- KEYS[8] visibility index of the shard's open runs
-- KEYS[9] visibility index of the shard's runs of the run's workflow type
-- KEYS[10] visibility index of the shard's runs on the run's task queue
-- KEYS[11] visibility index of the shard's runs closed with the run's status
-- ARGV[1] run id
-- ARGV[2] only runs closed at or before this time (ms) are removed
--
-- Returns {'PURGED'} or {'KEEP'} when the run is open or closed too recently.
local run = redis.call('HMGET', KEYS[1], 'status', 'closed_at')
if run[1] == 'RUNNING' or (run[2] and tonumber(run[2]) > tonumber(ARGV[2])) then
  return {'KEEP'}
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[5], ARGV[1])
for i = 6, 11 do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
if redis.call('HGET', KEYS[4], 'run_id') == ARGV[1] then
  redis.call('DEL', KEYS[4])
end
return {'PURGED'}
