-- ArgoCD health of an Application: the health ArgoCD itself assessed for it
-- (status.health). ArgoCD 1.8 stopped assessing the health of Applications managed by
-- another Application; without this check the sync waves of gitops-examples/argocd/apps
-- would not wait for the Trellis chart to be Healthy before the mesh config and the apps.
-- An Application never assessed yet is Progressing.
local hs = {}
hs.status = "Progressing"
hs.message = "waiting for the first health assessment"
if obj.status ~= nil and obj.status.health ~= nil and obj.status.health.status ~= nil then
  hs.status = obj.status.health.status
  hs.message = obj.status.health.message
  if hs.message == nil then
    hs.message = ""
  end
end
return hs
