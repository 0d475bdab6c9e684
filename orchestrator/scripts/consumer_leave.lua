-- Remove a consumer from a task stream's consumer group, unless it holds an entry.
-- Deleting a consumer drops its pending entries for good (nobody could reclaim them),
-- so the check and the deletion must be one step: a worker may read between them.
--
-- KEYS[1] task stream
-- ARGV[1] consumer group
-- ARGV[2] consumer name
--
-- Returns 1 if the consumer is gone (removed, or never there), 0 if it holds entries.
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
