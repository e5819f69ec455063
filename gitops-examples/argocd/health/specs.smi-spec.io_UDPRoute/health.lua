-- ArgoCD health of a UDPRoute (specs.smi-spec.io), from the conditions the Trellis
-- operator writes into status.conditions (docs/status.md, docs/argocd.md):
--   Accepted  False: the latest version is invalid                    -> Degraded
--   Accepted  True                                                    -> Healthy
--   no status yet, or a status about an older metadata.generation     -> Progressing
-- It names no other resource, so it has no ResolvedRefs condition.
-- Never Suspended: SMI resources cannot be paused.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function explain(c)
  local message = c.message
  if message == nil or message == "" then
    message = c.type .. " is " .. tostring(c.status)
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason .. ": " .. message
  end
  return message
end

local accepted = condition("Accepted")
if accepted == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator: no status yet"
  return hs
end

local observed = obj.status.observedGeneration
if observed == nil then
  observed = accepted.observedGeneration
end
local generation = obj.metadata.generation
if observed ~= nil and generation ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator: generation " .. generation
    .. " not observed yet (the status is about generation " .. observed .. ")"
  return hs
end

if accepted.status == "False" then
  hs.status = "Degraded"
  hs.message = explain(accepted)
  return hs
end
if accepted.status ~= "True" then
  hs.status = "Progressing"
  hs.message = "waiting for the operator: " .. explain(accepted)
  return hs
end

local resolved = condition("ResolvedRefs")
if resolved ~= nil and resolved.status == "False" then
  hs.status = "Degraded"
  hs.message = explain(resolved)
  return hs
end
if resolved ~= nil and resolved.status ~= "True" then
  hs.status = "Progressing"
  hs.message = "waiting for the operator: " .. explain(resolved)
  return hs
end

hs.status = "Healthy"
hs.message = accepted.message
if hs.message == nil or hs.message == "" then
  hs.message = "accepted and in force"
end
return hs
