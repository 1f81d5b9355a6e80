-- wrk script for scripts/bench_writes.py: POST distinct pre-signed entries.
--
-- wrk -s scripts/wrk_post.lua URL -- BODIES_FILE OFFSET
-- BODIES_FILE holds one canonical hashedrekord entry per line; thread t of
-- T sends entries OFFSET+t, OFFSET+t+T, ... so every request is a new entry.
-- done() prints one JSON line (prefixed "WRK_JSON ") with the figures.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local bodies = {}
local n = 0
local next_index = 0
local step = 1
local headers = {["Content-Type"] = "application/json"}

function init(args)
  for line in io.lines(args[1]) do
    n = n + 1
    bodies[n] = line
  end
  next_index = tonumber(args[2] or "0") + (tid or 0)
  step = counter > 0 and counter or 1
end

function request()
  local body = bodies[(next_index % n) + 1]
  next_index = next_index + step
  return wrk.format("POST", "/api/v1/log/entries", headers, body)
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
