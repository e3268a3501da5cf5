# Embargo container image. Built with the same scripts as the README's quick
# start (scripts/deps.sh, scripts/build.sh), so the two cannot drift; runs as
# the unprivileged user embargo, uid/gid 10001 (sidecar firewall rules exclude
# Embargo's own connections by this uid).
#   docker build -t embargo .          or   scripts/container.sh build embargo
#   docker run --rm -p 3128:3128 -v $PWD/embargo.yaml:/etc/embargo/embargo.yaml:ro embargo
# A second target, `init`, is the Kubernetes sidecar's init container: the
# same binary plus iptables, run as root to load `embargo rules` output into
# the pod's network namespace (deploy/kubernetes/sidecar.yaml).
#   docker build --target init -t embargo-init .
# README.md ("Container") documents the mount path and environment overrides.

FROM debian:bookworm-slim AS build
WORKDIR /src
COPY scripts/deps.sh scripts/
RUN scripts/deps.sh build
COPY . .
RUN scripts/build.sh release -DEMBARGO_TESTS=OFF && strip build/embargo
# The image's configuration enables the admin endpoint the HEALTHCHECK asks,
# but only when this build's loader accepts the `admin` key: otherwise the
# image ships without it (and HEALTHCHECK reports unhealthy) rather than with
# a configuration embargo would refuse to start with.
RUN cat deploy/container/embargo.yaml deploy/container/admin.yaml > build/image.yaml \
 && if ! build/embargo config check build/image.yaml >/dev/null 2>&1; then \
      echo "embargo: this build does not accept the admin key; image config without it" >&2; \
      cp deploy/container/embargo.yaml build/image.yaml; \
    fi \
 && build/embargo config check build/image.yaml

FROM debian:bookworm-slim AS init
COPY scripts/deps.sh /tmp/deps.sh
RUN /tmp/deps.sh init && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/deps.sh
COPY --from=build /src/build/embargo /usr/local/bin/embargo
# Root with NET_ADMIN and NET_RAW granted by the pod spec; it only writes
# `embargo rules` output to a file, loads it with iptables-restore (and
# ip6tables-restore), and exits.
USER 0:0
CMD ["embargo", "version"]

# The default (last) target: the proxy itself.
FROM debian:bookworm-slim AS runtime
# Only the shared libraries the binary links (the one list is
# scripts/deps.sh's runtime list); the ldd check fails the build if the list
# and the binary disagree.
COPY scripts/deps.sh /tmp/deps.sh
RUN /tmp/deps.sh runtime \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/deps.sh \
 && groupadd --gid 10001 embargo \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin embargo
COPY --from=build /src/build/embargo /usr/local/bin/embargo
COPY --from=build /src/build/image.yaml /etc/embargo/embargo.yaml
COPY deploy/container/entrypoint.sh /usr/local/bin/embargo-entrypoint
RUN if ldd /usr/local/bin/embargo | grep 'not found'; then \
      echo "embargo: runtime libraries missing: update runtime_pkgs in scripts/deps.sh" >&2; exit 1; \
    fi \
 && /usr/local/bin/embargo version

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# 3128: explicit proxy (the image's config); 3129: the intercept listener the
# Kubernetes sidecar example configures; 9090: admin endpoint, when a mounted
# config puts admin.listen on a non-loopback address.
EXPOSE 3128 3129 9090
# Liveness (`embargo status --live`, the admin endpoint's /healthz): the
# process works, its event loops answer and its listeners are bound. Never a
# date, a stale vendor list or the resolver: those are readiness
# (`embargo status`, /readyz), which must not get a working egress restarted.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/embargo-entrypoint", "status", "--live"]
ENTRYPOINT ["/usr/local/bin/embargo-entrypoint"]
CMD ["run"]
