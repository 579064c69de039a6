-- Flood of wrong-password sign-ins: POST /login with a valid CSRF token and pre-session cookie
-- (fetched once by flood.sh), so every request reaches the password check or a limit.
--
-- Environment: CSRF_TOKEN, PRE_SESSION_COOKIE ("name=value"), VICTIM (username),
--   SPREAD=0: every request from one address (X-Forwarded-For 203.0.113.9) for VICTIM;
--   SPREAD=1: every request from a new address (10.x.y.z) for a new made-up username, so no
--             limit recognises it and each one needs a password check (the hashing pool's test).
-- Prints one RESULT line with the count of each status.

local threads = {}

local function form_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

local csrf, cookie, victim, spread
local n = 0
s401, s429, s503, s_other = 0, 0, 0, 0

function init(args)
  csrf = form_encode(os.getenv("CSRF_TOKEN") or "")
  cookie = os.getenv("PRE_SESSION_COOKIE") or ""
  victim = os.getenv("VICTIM") or "flood-victim"
  spread = os.getenv("SPREAD") == "1"
  math.randomseed(os.time() + (tonumber(thread_id) or 0) * 7919)
end

function request()
  n = n + 1
  local user, address = victim, "203.0.113.9"
  if spread then
    user = "flood-" .. (thread_id or 0) .. "-" .. n
    address = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
  end
  local body = "csrf_token=" .. csrf .. "&return_to=%2Faccount&username=" .. user ..
    "&password=wrong-password-123"
  return wrk.format("POST", "/login", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = cookie,
    ["X-Forwarded-For"] = address,
  }, body)
end

function response(status, headers, body)
  if status == 401 then s401 = s401 + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  else s_other = s_other + 1 end
end

local function sum(name)
  local total = 0
  for _, t in ipairs(threads) do total = total + (tonumber(t:get(name)) or 0) end
  return total
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT scenario=login_flood rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d status_401=%d status_429=%d status_503=%d status_other=%d socket_errors=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, sum("s401"), sum("s429"), sum("s503"), sum("s_other"),
    e.connect + e.read + e.write + e.timeout))
end
