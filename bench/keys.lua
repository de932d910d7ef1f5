-- wrk script: the URL given to wrk, with the Authorization header taken in turn from a
-- file of API keys (BENCH_KEYS_FILE, one key per line). Rate limits are per key (300 to
-- 3,000 a minute, docs/TIERS.md): one key would measure 429 answers after the first few
-- seconds, so bench/api.sh creates enough keys that none runs dry. Requests are built
-- once, in init(), so rotating costs a table lookup per request.
-- The JSON summary comes from report.lua (BENCH_LUA_DIR names its folder).

local dir = os.getenv("BENCH_LUA_DIR") or "bench"
dofile(dir .. "/report.lua")
dofile(dir .. "/keyring.lua")

local requests = {}
local next_request = 0

init = function(args)
  for _, key in ipairs(keyring_load()) do
    requests[#requests + 1] = wrk.format(nil, nil, keyring_headers(key))
  end
  if #requests == 0 then
    requests[1] = wrk.format()
  end
  -- Threads start at different keys, so two threads do not walk the ring in step.
  next_request = math.random(#requests) - 1
end

request = function()
  next_request = next_request % #requests + 1
  return requests[next_request]
end
