# kube-cache-proxy's image: `docker build -t ghcr.io/kube-cache-proxy/kube-cache-proxy:0.1.0 .`
# Build stage: the locked dependencies and the TypeScript build. Runtime stage: Node.js 24 (LTS), the
# production dependencies and the proxy's compiled code only, as a non-root user (65532), writing
# nothing to its filesystem (run it with a read-only root filesystem, as the Helm chart does).
ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the only install script is the devDependency `node`'s, which fetches a second
# Node.js 24 binary for npm scripts on developer machines; the base image's Node is already 24.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY proxy proxy
COPY cache cache
COPY indexes indexes
COPY flowcontrol flowcontrol
# Only the proxy's own code is in the build context's copy: tsconfig.json's other include
# entries (test, bench) match nothing here, so tests and benchmarks are neither built nor shipped.
RUN node node_modules/typescript/bin/tsc -p tsconfig.json
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kube-cache-proxy" \
      org.opencontainers.image.description="A caching reverse proxy for kube-apiserver" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kube-cache-proxy/kube-cache-proxy" \
      org.opencontainers.image.base.name="docker.io/library/node:24-slim"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist/proxy dist/proxy
COPY --from=build /src/dist/cache dist/cache
COPY --from=build /src/dist/indexes dist/indexes
COPY --from=build /src/dist/flowcontrol dist/flowcontrol
# A numeric user (no passwd entry needed) so that runAsNonRoot can verify it.
USER 65532:65532
# The main TLS port and the plain-HTTP metrics and health port (--listen, --metrics-listen).
EXPOSE 8443 9443
ENTRYPOINT ["node", "dist/proxy/cli.js"]
