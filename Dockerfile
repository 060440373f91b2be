# syntax=docker/dockerfile:1
#
# Expose server as a container: build the single executable with the Bun pinned in package-lock.json,
# then run it alone on a minimal glibc base as a non-root user, with the database on the /data volume.
#
#   docker build -t expose-server .
#   docker run -d --name expose -p 3000:3000 -v expose-data:/data expose-server
#   docker exec -i expose expose-server user add admin@example.com < password.txt
#   (umask 077; docker exec expose expose-server backup - > expose-backup.db)   # no sqlite3 needed
#
# Runtime base: distroless "base-nossl" is the smallest image that has what the binary links against
# (glibc: libc, libm, libpthread, libdl; Bun carries its own TLS and SQLite). It has no shell and no
# curl, so the HEALTHCHECK runs the binary's own `healthcheck` command. Alpine would save a few MB next
# to a ~111 MB binary, but needs Bun's musl build plus libstdc++ and libgcc, so it is not the default.
# Multi-arch: `docker buildx build --platform linux/arm64 .` builds inside an arm64 stage, where npm ci
# installs the arm64 Bun from the same lockfile.

ARG BUILD_IMAGE=node:22-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/base-nossl-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# Dependencies first, so source edits do not re-run the install. npm ci installs exactly the lockfile,
# Bun included (the `bun` devDependency and its platform package).
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && npx bun --version
COPY tsconfig.json ./
COPY drizzle ./drizzle
COPY scripts ./scripts
COPY src ./src
# Empty: a binary for the build stage's own platform, which is what the runtime stage runs on. Set it
# only with a matching RUNTIME_IMAGE (e.g. bun-linux-x64-musl on a musl base with libstdc++).
ARG BUN_TARGET=
RUN npx bun scripts/build.ts ${BUN_TARGET:+--target "$BUN_TARGET"} \
    && if [ -z "$BUN_TARGET" ]; then ./dist/expose-server --version; fi \
    && mkdir -m 700 /data

FROM ${RUNTIME_IMAGE}
COPY --from=build /src/dist/expose-server /usr/local/bin/expose-server
# The volume's mount point belongs to the runtime user (65532 = "nonroot" in distroless), so a fresh
# named volume is writable by it.
COPY --from=build --chown=65532:65532 /data /data
ENV EXPOSE_HOST=0.0.0.0 \
    EXPOSE_PORT=3000 \
    EXPOSE_DB=/data/expose.db
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
# 3000 with TLS off (behind a proxy); 80 and 443 with EXPOSE_TLS=acme or files (see the README's TLS section).
EXPOSE 3000 80 443
# Reads EXPOSE_HOST/EXPOSE_PORT like the server does: change the port with the variable, not a flag.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/expose-server", "healthcheck"]
# SIGTERM (docker stop's default) stops gracefully: in-flight requests get up to 10 s, docker stop
# waits 10 s by default; use `docker stop -t 15` (or stop_grace_period) to give the server its full time.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/expose-server"]
