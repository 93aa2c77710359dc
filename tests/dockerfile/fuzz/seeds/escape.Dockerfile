# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
RUN Write-Host hello; `
    # a comment inside
    Write-Host world
ENV PATH C:\tools;C:\Windows
USER ContainerUser
