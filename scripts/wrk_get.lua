-- wrk script for scripts/bench_reads.py and bench_growth.py: random reads.
--
-- wrk -s scripts/wrk_get.lua URL -- MODE SIZE
-- MODE: entry       GET /api/v1/log/entries?logIndex=<random index < SIZE>
--       proof       GET /api/v1/log/proof?firstSize=<random in [1, SIZE]>&lastSize=SIZE
--       tile        GET /tile/0/<random full level-0 tile>
--       tile1       GET /tile/1/<random full level-1 tile>
--       bundle      GET /tile/entries/<random full entry bundle>
--       partial     GET /tile/0/<last>.p/<width> (the right edge of the tree)
-- done() prints one JSON line (prefixed "WRK_JSON ") with the figures.

local mode = "entry"
local size = 1

local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local function tile_index(n)
  -- c2sp.org/tlog-tiles: 3-digit groups, all but the last prefixed "x"
  local s = string.format("%03d", n % 1000)
  n = math.floor(n / 1000)
  while n > 0 do
    s = string.format("x%03d/", n % 1000) .. s
    n = math.floor(n / 1000)
  end
  return s
end

function init(args)
  mode = args[1] or "entry"
  size = tonumber(args[2] or "1")
  math.randomseed(os.time() + (tid or 0) * 7919)
end

function request()
  local path
  if mode == "entry" then
    path = "/api/v1/log/entries?logIndex=" .. math.random(0, size - 1)
  elseif mode == "proof" then
    path = "/api/v1/log/proof?firstSize=" .. math.random(1, size) .. "&lastSize=" .. size
  elseif mode == "tile" then
    path = "/tile/0/" .. tile_index(math.random(0, math.floor(size / 256) - 1))
  elseif mode == "tile1" then
    path = "/tile/1/" .. tile_index(math.random(0, math.floor(size / 65536) - 1))
  elseif mode == "bundle" then
    path = "/tile/entries/" .. tile_index(math.random(0, math.floor(size / 256) - 1))
  else
    path = "/tile/0/" .. tile_index(math.floor(size / 256)) .. ".p/" .. (size % 256)
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
