-- ArgoCD health of a Trellis Canary (trellis.dev), from the status the Trellis operator
-- writes (docs/canary.md, docs/argocd.md). In order:
--   no status yet, or a status about an older metadata.generation     -> Progressing
--   Accepted False (invalid), ResolvedRefs False (a Service is missing),
--   Ready False with reason Conflicted (its TrafficSplit is in Git)    -> Degraded
--   spec.suspend: true                                                -> Suspended
--   phase Initializing, Progressing, WaitingPromotion                 -> Progressing
--   phase Succeeded (promoted, then finalized on the new stable)      -> Healthy
--   phase Failed (rolled back: checks failed, deadline, abort)        -> Degraded
local hs = {}

local function condition(kind)
  if obj.status.conditions == nil then
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

if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator: no status yet"
  return hs
end

local observed = obj.status.observedGeneration
local generation = obj.metadata.generation
if observed ~= nil and generation ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator: generation " .. generation
    .. " not observed yet (the status is about generation " .. observed .. ")"
  return hs
end

local accepted = condition("Accepted")
if accepted ~= nil and accepted.status == "False" then
  hs.status = "Degraded"
  hs.message = explain(accepted)
  return hs
end
local resolved = condition("ResolvedRefs")
if resolved ~= nil and resolved.status == "False" then
  hs.status = "Degraded"
  hs.message = explain(resolved)
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "False" and ready.reason == "Conflicted" then
  hs.status = "Degraded"
  hs.message = explain(ready)
  return hs
end

local phase = obj.status.phase
local where = phase
if phase ~= "Initializing" then
  local target = obj.status.target
  if target == nil then
    target = "the canary"
  end
  where = phase .. ": " .. target .. " at canary weight " .. (obj.status.canaryWeight or 0) .. " %"
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "suspended (spec.suspend): " .. where
  return hs
end

local message = obj.status.message
if message == nil or message == "" then
  if phase == "Initializing" then
    message = "no version to analyse yet: waiting for the canary backend's workloads"
  end
end
if message ~= nil and message ~= "" then
  hs.message = where .. ": " .. message
else
  hs.message = where
end

if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Failed" then
  hs.status = "Degraded"
elseif phase == "Initializing" or phase == "Progressing" or phase == "WaitingPromotion" then
  hs.status = "Progressing"
else
  hs.status = "Unknown"
  hs.message = "unknown phase " .. tostring(phase) .. ": " .. hs.message
end
return hs
