-- Shared by keys.lua and vary.lua: the API keys to rotate through (BENCH_KEYS_FILE, one
-- per line; none when unset, and the -H header of the command line is used as given).

function keyring_load()
  local keys = {}
  local path = os.getenv("BENCH_KEYS_FILE")
  if path == nil or path == "" then
    return keys
  end
  local file = assert(io.open(path, "r"), "cannot open BENCH_KEYS_FILE " .. path)
  for line in file:lines() do
    if line ~= "" then
      keys[#keys + 1] = line
    end
  end
  file:close()
  return keys
end

function keyring_headers(key)
  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  headers["Authorization"] = "Bearer " .. key
  return headers
end
