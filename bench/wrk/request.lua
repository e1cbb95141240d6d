-- One request shape for wrk, taken from the environment (bench/api.sh sets these):
--   WRK_METHOD  GET (default) or POST
--   WRK_BODY    request body; sent with Content-Type: application/json when set
--   WRK_TOKEN   bearer token for the Authorization header, when set
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

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect, e.read, e.write, e.timeout))
end
