# azd postdeploy hook on Windows. The doctor is the Linux `handler` binary: run it in WSL, where
# the Azure CLI is signed in, from the repository:
#   azd hooks run postdeploy   (in WSL, with azd and az installed there)
# or by hand as scripts/azd/postdeploy.sh describes.
Write-Host "postdeploy: the deployment is done. To check what the portal still needs in the tenant,"
Write-Host "postdeploy: run scripts/azd/postdeploy.sh in WSL (or a Linux shell) with azd and az signed in."
$global:LASTEXITCODE = 0
