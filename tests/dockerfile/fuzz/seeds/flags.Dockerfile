FROM --platform=$BUILDPLATFORM golang AS b
ADD --keep-git-dir=true --checksum=sha256:00 --exclude=*.md --exclude=docs https://example.com/x.git /x
COPY --parents --exclude="a b" -- --weird dest/
RUN --network=none --security=insecure --device=/dev/fuse true
HEALTHCHECK --interval=30s --timeout=3s --start-period=1m --start-interval=2s --retries=3 CMD curl -f http://localhost/ || exit 1
HEALTHCHECK NONE
STOPSIGNAL SIGTERM
