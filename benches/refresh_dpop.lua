-- Scenario: refresh_dpop — the `refresh` scenario of ../shared/bench (rotation chains, each
-- family strictly sequential) with every request carrying a DPoP proof (RFC 9449) by the key the
-- families are bound to. benches/load.sh runs it; see there for the seeding.
--
-- A proof is single-use (the server keeps its `jti`), so proofs cannot be signed once per
-- connection: PROOFS_FILE holds pre-signed proofs, one per line, each with its own `jti`, all
-- signed by the families' key for POST {TOKEN_PATH} just before the run (their `iat` must still be
-- within the server's window, 60 s by default, when they are sent). The file is split into THREADS
-- slices like the tokens; a thread that runs out of proofs sends requests without one (refused,
-- counted in non2xx and `unproven`), so a too-short file shows up as errors, never as a faster run.
--
-- Environment: CLIENT_ID (required), CLIENT_SECRET, AUTH_METHOD, REFRESH_TOKENS_FILE (required),
--              PROOFS_FILE (required), THREADS (wrk -t, default 2), TOKEN_PATH (default /token),
--              BENCH_DIR (where ../shared/bench's common.lua is).

local bench_dir = os.getenv("BENCH_DIR")
if bench_dir and bench_dir ~= "" then
  package.path = bench_dir .. "/?.lua;" .. package.path
end
local common = require "common"

local path = common.env("TOKEN_PATH", "/token")
local headers, prefix = common.client_auth()
prefix = prefix .. "grant_type=refresh_token&refresh_token="

non2xx = 0
bad = 0
broken = 0
starved = 0
unproven = 0
rotated = 0
families = 0

local queue, head, tail = {}, 1, 0
local proofs, next_proof = {}, 1
local starved_in_flight = 0

local function push(tok)
  tail = tail + 1
  queue[tail] = tok
end

local function pop()
  if head > tail then
    return nil
  end
  local tok = queue[head]
  queue[head] = nil
  head = head + 1
  return tok
end

-- This thread's slice of a file: lines [id * per + 1, (id + 1) * per].
local function slice(file)
  local lines = {}
  local f = io.open(file, "r")
  if not f then
    io.stderr:write("cannot open " .. file .. "\n")
    os.exit(2)
  end
  for line in f:lines() do
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    if line ~= "" then
      table.insert(lines, line)
    end
  end
  f:close()
  local nthreads = tonumber(common.env("THREADS", "2"))
  local per = math.floor(#lines / nthreads)
  local id = tonumber(thread_id) or 0
  local mine = {}
  for i = id * per + 1, (id + 1) * per do
    table.insert(mine, lines[i])
  end
  return mine
end

function setup(thread)
  common.setup(thread)
end

function init(args)
  for _, tok in ipairs(slice(common.require_env("REFRESH_TOKENS_FILE"))) do
    push(tok)
  end
  families = tail
  proofs = slice(common.require_env("PROOFS_FILE"))
end

function request()
  local tok = pop()
  if tok == nil then
    if thread_id ~= nil then
      starved = starved + 1
      starved_in_flight = starved_in_flight + 1
    end
    tok = "no-live-refresh-token"
  end
  local h = {}
  for k, v in pairs(headers) do
    h[k] = v
  end
  local proof = proofs[next_proof]
  if proof then
    proofs[next_proof] = nil
    next_proof = next_proof + 1
    h["DPoP"] = proof
  elseif thread_id ~= nil then
    unproven = unproven + 1
  end
  return wrk.format("POST", path, h, prefix .. common.form_encode(tok))
end

function response(status, hdrs, resp)
  local nxt = nil
  if status == 200 then
    nxt = resp:match('"refresh_token"%s*:%s*"([^"]+)"')
    if not resp:find('"token_type"%s*:%s*"DPoP"') then
      nxt = nil
    end
  end
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  if nxt then
    rotated = rotated + 1
    push(nxt)
  else
    bad = bad + 1
    if starved_in_flight > 0 then
      starved_in_flight = starved_in_flight - 1
    else
      broken = broken + 1
    end
  end
end

function done(summary, latency, requests)
  common.report("refresh_dpop", summary, latency, {
    { "families", common.sum("families") },
    { "rotated", common.sum("rotated") },
    { "broken", common.sum("broken") },
    { "starved", common.sum("starved") },
    { "unproven", common.sum("unproven") },
  })
end
