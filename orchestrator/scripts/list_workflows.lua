-- List (or count) one shard's runs, newest first, filtered, after a cursor.
-- Read-only. The caller merges the shards' pages.
--
-- KEYS[1] visibility summaries of the shard (run id -> JSON)
-- KEYS[2] the index to walk: by start time or by close time
-- ARGV[1] highest score to return (ms; '+inf' for none)
-- ARGV[2] lowest score to return (ms; '-inf' for none)
-- ARGV[3] cursor: run id of the last entry already returned at score ARGV[1], or ''
-- ARGV[4] page size (0: count instead of listing)
-- ARGV[5] filters JSON: {"status", "workflow_type", "task_queue", "start_min", "start_max"}
--         (each optional)
-- ARGV[6] most index entries to examine in this call
--
-- Returns {count, examined, exhausted (1/0), score, summary JSON, score, summary JSON, ...}:
-- the matching entries in order, at most a page; count is their number (or, when
-- counting, the number of matches examined).
local filters = cjson.decode(ARGV[5])
local page, limit, cursor = tonumber(ARGV[4]), tonumber(ARGV[6]), ARGV[3]
local max_score = ARGV[1]

local function matches(s)
  return (not filters.status or s.status == filters.status)
    and (not filters.workflow_type or s.workflow_type == filters.workflow_type)
    and (not filters.task_queue or s.task_queue == filters.task_queue)
    and (not filters.start_min or s.start_time >= filters.start_min)
    and (not filters.start_max or s.start_time <= filters.start_max)
end

local out, found, examined, offset, exhausted = {}, 0, 0, 0, 0
while examined < limit do
  local batch = redis.call('ZREVRANGEBYSCORE', KEYS[2], max_score, ARGV[2], 'WITHSCORES',
    'LIMIT', offset, 256)
  if #batch == 0 then exhausted = 1 break end
  offset = offset + #batch / 2
  for i = 1, #batch, 2 do
    local member, score = batch[i], batch[i + 1]
    examined = examined + 1
    -- Entries at the cursor's score come newest member first: skip those already returned.
    local seen = cursor ~= '' and score == max_score and member >= cursor
    if not seen then
      local raw = redis.call('HGET', KEYS[1], member)
      if raw and matches(cjson.decode(raw)) then
        found = found + 1
        if page > 0 then
          out[#out + 1] = score
          out[#out + 1] = raw
          if found == page then return {found, examined, 0, unpack(out)} end
        end
      end
    end
  end
end
return {found, examined, exhausted, unpack(out)}
