# The qodwatch image: one static binary on distroless "static" (CA
# certificates and time zones, no shell, no libc), run as the numeric
# non-root user 65532 that deploy/kubernetes's pod runs it as.
#
#   docker build -t registry.example.com/qodwatch:latest .
#
# .git is part of the build context (only the build stage sees it), so
# `qodwatch version` names the commit; .dockerignore leaves out only files
# git does not track, so a clean checkout is not reported as modified.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static, no cgo, no local paths; the same as deploy/deploytest's
# StaticBuildEnv and StaticBuildFlags, which the tests build with.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -buildvcs=auto -o /out/qodwatch ./cmd/qodwatch

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/qodwatch /usr/local/bin/qodwatch
USER 65532:65532
# web (/metrics, status page, probes) and the notification receiver.
EXPOSE 9467 9468
ENTRYPOINT ["/usr/local/bin/qodwatch"]
CMD ["run", "--config.file=/etc/qodwatch/config.yaml"]
