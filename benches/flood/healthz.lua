-- GET /healthz next to a flood: its latency is what any other user of the server would feel.
-- Prints one RESULT line.

local threads = {}
bad = 0

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (tonumber(t:get("bad")) or 0) end
  local e = summary.errors
  io.write(string.format(
    "RESULT scenario=healthz rps=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f requests=%d non200=%d socket_errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.requests, total,
    e.connect + e.read + e.write + e.timeout))
end
