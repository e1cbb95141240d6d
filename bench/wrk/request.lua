-- One request shape for wrk, taken from the environment (bench/api.sh sets these):
--   WRK_METHOD  GET (default) or POST
--   WRK_BODY    request body; sent with Content-Type: application/json when set
--   WRK_TOKEN   bearer token for the Authorization header, when set
--   WRK_TOKENS  a file of bearer tokens, one per line, used in turn instead (each thread from its
--               own starting point): a create benchmark spread over many owners
-- At the end, done() prints one machine-readable line that api.sh parses:
--   RESULT requests=… rps=… p50_ms=… p99_ms=… max_ms=… non2xx=… connect_err=… read_err=… write_err=… timeouts=…
-- (non2xx is wrk's count of answers outside 200-399.)

local method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
local token = os.getenv("WRK_TOKEN")

wrk.method = method
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local tokens = os.getenv("WRK_TOKENS")
if tokens ~= nil and tokens ~= "" then
  local next_thread = 0
  function setup(thread)
    thread:set("thread_index", next_thread)
    next_thread = next_thread + 1
  end

  -- Formatted once per thread; request() only hands the next one out.
  local requests = {}
  local at = 0
  function init(args)
    for line in io.lines(tokens) do
      if line ~= "" then
        wrk.headers["Authorization"] = "Bearer " .. line
        requests[#requests + 1] = wrk.format()
      end
    end
    assert(#requests > 0, "WRK_TOKENS names an empty file")
    at = (thread_index or 0) * 7919 % #requests
  end

  function request()
    at = at % #requests + 1
    return requests[at]
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect, e.read, e.write, e.timeout))
end
