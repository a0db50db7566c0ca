-- mailmapd passdb and userdb for Dovecot 2.3 (driver = lua) and 2.4 (passdb lua {}).
--
-- Asks the mailmapd daemon over HTTP (dovecot.http, Dovecot's own client, which keeps
-- its connection open between logins): no fork per login, no extra Lua modules.
-- The daemon checks the password itself, so its verified-credential cache and its
-- brute-force limiter apply, and no password hash ever reaches Dovecot. Only plaintext
-- mechanisms (PLAIN, LOGIN) can be used with this passdb.
--
-- Settings, later ones winning:
--   built-in defaults below
--   environment MAILMAPD_URL, MAILMAPD_HTTP_SECRET, MAILMAPD_QUOTA_FIELD
--     (Dovecot 2.3: pass them with import_environment, as `mailmapd dovecot-config --lua` prints)
--   Dovecot 2.4: lua_settings { url = … http_secret = … quota_field = … }
--
-- Wire (see src/dovecot/route.ts): POST url/dovecot/passdb and url/dovecot/userdb with a
-- form-encoded body, answered with a form-encoded `result=…&user=…&home=…` body;
-- GET url/dovecot/users answers one login per line.

local settings = {
  url = "http://127.0.0.1:9465",
  http_secret = "",
  -- Dovecot 2.3 reads the userdb field quota_rule (`*:bytes=N`). With another name
  -- (e.g. quota_storage_size on 2.4) the field gets the plain byte count.
  quota_field = "quota_rule",
  user_agent = "mailmapd-lua",
}

local function from_env(key, var)
  local v = os.getenv(var)
  if v ~= nil and v ~= "" then settings[key] = v end
end
from_env("url", "MAILMAPD_URL")
from_env("http_secret", "MAILMAPD_HTTP_SECRET")
from_env("quota_field", "MAILMAPD_QUOTA_FIELD")

local client = nil

-- 2.4 passes lua_settings here; 2.3 passes nothing.
function script_init(args)
  if type(args) == "table" then
    for k, v in pairs(args) do
      if settings[k] ~= nil and type(v) == "string" then settings[k] = v end
    end
  end
  settings.url = string.gsub(settings.url, "/+$", "")
  return 0
end

function script_deinit()
  client = nil
end

local function urlencode(s)
  s = string.gsub(tostring(s), "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end)
  return s
end

local function urldecode(s)
  s = string.gsub(s, "+", " ")
  s = string.gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  return s
end

local function encode_form(t)
  local parts = {}
  for k, v in pairs(t) do
    if v ~= nil then parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(v) end
  end
  return table.concat(parts, "&")
end

local function decode_form(body)
  local t = {}
  for pair in string.gmatch(body or "", "[^&]+") do
    local k, v = string.match(pair, "^([^=]*)=(.*)$")
    if k ~= nil then t[urldecode(k)] = urldecode(v) end
  end
  return t
end

-- One client per auth process, created on first use. The client settings were renamed
-- in 2.4 (…_msecs numbers became Dovecot durations); 2.3.19 ignores names it does not
-- know, so the first attempt gives both. Should 2.4 refuse the 2.3 names, the second
-- gives only the 2.4 ones, and the last only what every version takes.
local function http_client()
  if client ~= nil then return client end
  local attempts = {
    { user_agent = settings.user_agent,
      max_idle_time_msecs = 60000, request_timeout_msecs = 5000, connect_timeout_msecs = 2000, max_attempts = 1,
      max_idle_time = "60s", request_timeout = "5s", connect_timeout = "2s", request_max_attempts = 1 },
    { user_agent = settings.user_agent, max_idle_time = "60s", request_timeout = "5s", connect_timeout = "2s" },
    { user_agent = settings.user_agent },
  }
  local last_err
  for _, set in ipairs(attempts) do
    local ok, c = pcall(dovecot.http.client, set)
    if ok and c ~= nil then
      client = c
      return client
    end
    last_err = c
  end
  error("mailmapd: cannot create the HTTP client: " .. tostring(last_err))
end

-- Returns the decoded answer table, or nil and a reason for Dovecot's log.
local function call(method, path, fields)
  local ok, resp = pcall(function()
    local req = http_client():request({ url = settings.url .. path, method = method })
    if settings.http_secret ~= "" then req:add_header("Authorization", "Bearer " .. settings.http_secret) end
    if fields ~= nil then
      req:add_header("Content-Type", "application/x-www-form-urlencoded")
      req:set_payload(encode_form(fields))
    end
    return req:submit()
  end)
  if not ok then return nil, "mailmapd request failed: " .. tostring(resp) end
  local status = resp:status()
  local body = resp:payload()
  if status ~= 200 then
    local why = decode_form(body).reason or resp:reason() or ""
    return nil, "mailmapd answered " .. tostring(status) .. " " .. why
  end
  return body, nil
end

-- The userdb fields Dovecot wants, from a daemon answer.
local function userdb_fields(a)
  local f = { home = a.home, uid = a.uid, gid = a.gid }
  if a.quota_rule ~= nil and a.quota_rule ~= "" then
    if settings.quota_field == "quota_rule" then
      f.quota_rule = a.quota_rule
    else
      f[settings.quota_field] = string.match(a.quota_rule, "bytes=(%d+)")
    end
  end
  return f
end

local function req_field(req, new, old)
  -- 2.4 renamed some request variables (service → protocol, rip → remote_ip, …).
  local v = req[new]
  if v == nil or v == "" then v = req[old] end
  if v == nil then return "" end
  return v
end

local function passdb_answer(req, body, master)
  local a = decode_form(body)
  if a.result == "ok" and master then
    -- Dovecot itself switches to the login user after a master passdb succeeds.
    return dovecot.auth.PASSDB_RESULT_OK, {}
  elseif a.result == "ok" then
    -- `user` canonicalises the login (case, alias domains) for everything after.
    return dovecot.auth.PASSDB_RESULT_OK, { user = a.user }
  elseif a.result == "unknown" then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "unknown user"
  elseif a.result == "disabled" then
    return dovecot.auth.PASSDB_RESULT_USER_DISABLED, "mailbox disabled"
  elseif a.result == "mismatch" then
    if a.reason == "refused" then req:log_info("mailmapd: refused by the brute-force limiter") end
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "password mismatch"
  end
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mailmapd: unexpected answer"
end

-- Plaintext logins: the daemon checks the password. As the master passdb (user*master,
-- auth_master_user_separator), Dovecot asks with user = the master user and login_user =
-- the mailbox to log in as: the daemon checks the master's password and the mailbox.
function auth_password_verify(req, password)
  local login_user = req.login_user
  local master = nil
  if login_user ~= nil and login_user ~= "" and login_user ~= req.user then master = req.user end
  local body, err = call("POST", "/dovecot/passdb", {
    user = master and login_user or req.user,
    master = master,
    password = password,
    service = req_field(req, "protocol", "service"),
    rip = req_field(req, "remote_ip", "rip"),
    lip = req_field(req, "local_ip", "lip"),
    secured = req_field(req, "secured", "secured"),
  })
  if body == nil then return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, err end
  return passdb_answer(req, body, master ~= nil)
end

-- Lookups without a password (doveadm auth lookup, master users, proxies): existence and
-- state only. No password field is returned, so Dovecot never lets a login through on
-- this path unless a password check was already done elsewhere (skip_password_check).
-- The service is sent along: after Dovecot 2.4 checked a bearer token itself, this lookup is
-- the one place where a mailbox that may not use IMAP (say) is refused.
function auth_passdb_lookup(req)
  local body, err = call("POST", "/dovecot/userdb", { user = req.user, service = req_field(req, "protocol", "service") })
  if body == nil then return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, err end
  local a = decode_form(body)
  if a.result == "ok" then
    return dovecot.auth.PASSDB_RESULT_OK, { user = a.user }
  elseif a.result == "disabled" then
    return dovecot.auth.PASSDB_RESULT_USER_DISABLED, "mailbox disabled"
  elseif a.result == "unknown" then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "unknown user"
  end
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mailmapd: unexpected answer"
end

function auth_userdb_lookup(req)
  local body, err = call("POST", "/dovecot/userdb", { user = req.user })
  if body == nil then return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, err end
  local a = decode_form(body)
  if a.result == "ok" then
    local f = userdb_fields(a)
    f.user = a.user
    return dovecot.auth.USERDB_RESULT_OK, f
  elseif a.result == "unknown" or a.result == "disabled" then
    -- A userdb has no "disabled": LMTP must refuse delivery to it like to nobody.
    return dovecot.auth.USERDB_RESULT_USER_UNKNOWN, "unknown user"
  end
  return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, "mailmapd: unexpected answer"
end

-- `doveadm user '*'` and `doveadm … -A`: every active mailbox.
function auth_userdb_iterate()
  local body, err = call("GET", "/dovecot/users", nil)
  if body == nil then error(err) end
  local users = {}
  for line in string.gmatch(body, "[^\n]+") do users[#users + 1] = line end
  return users
end
