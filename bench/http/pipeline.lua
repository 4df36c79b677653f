-- wrk script: pipelined requests. Each round trip sends DEPTH GET requests in one
-- write and waits for all DEPTH responses; wrk counts every response as a request.
--   wrk -s bench/http/pipeline.lua URL [-- DEPTH]      (DEPTH defaults to 16)
-- wrk records one latency sample per batch: the time until the last response of it.
local batch

init = function(args)
  local depth = tonumber(args[1]) or 16
  local requests = {}
  for i = 1, depth do
    requests[i] = wrk.format("GET", wrk.path)
  end
  batch = table.concat(requests)
end

request = function()
  return batch
end
