-- wrk script: the filtered listing (b) with filters that vary per request, so that a
-- per-filter cache (of `total`, of first pages) is not hit on every request as it is when
-- one URL is repeated. 4 chains x 4 amount floors x 8 two-year windows = 128 distinct
-- filters. With BENCH_KEYS_FILE, the API keys are used in turn (see keys.lua).
-- The JSON summary comes from report.lua (BENCH_LUA_DIR names its folder).

local dir = os.getenv("BENCH_LUA_DIR") or "bench"
dofile(dir .. "/report.lua")
dofile(dir .. "/keyring.lua")

local chains = { "ethereum", "bsc", "arbitrum", "polygon" }
local floors = { "1000", "10000", "100000", "1000000" }
local headers = {}
local next_key = 0

init = function(args)
  math.randomseed(os.time() * 1000 + math.floor((os.clock() * 1e6) % 1000))
  for _, key in ipairs(keyring_load()) do
    headers[#headers + 1] = keyring_headers(key)
  end
  next_key = math.random(math.max(#headers, 1)) - 1
end

request = function()
  local from = 2016 + math.random(0, 7)
  local path = string.format(
    "/api/exploits?chain=%s&min_amount=%s&from=%d-01-01&to=%d-12-31&limit=50",
    chains[math.random(#chains)], floors[math.random(#floors)], from, from + 1)
  if #headers == 0 then
    return wrk.format("GET", path)
  end
  next_key = next_key % #headers + 1
  return wrk.format("GET", path, headers[next_key])
end
