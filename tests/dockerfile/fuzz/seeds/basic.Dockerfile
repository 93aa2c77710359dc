# syntax=docker/dockerfile:1
ARG BASE=alpine:3.20
FROM ${BASE} AS build
WORKDIR /src
COPY --chown=1000:1000 --chmod=644 go.mod go.sum ./
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=secret,id=netrc,required \
    go build -o /out/app ./cmd/app
FROM scratch
COPY --from=build --link /out/app /app
ENTRYPOINT ["/app"]
CMD ["--help"]
