# Embargo container image: built with the same scripts as the README's quick
# start, so the two cannot drift. Runs as an unprivileged user.
#   docker build -t embargo .
#   docker run --rm -p 3128:3128 embargo
FROM debian:12-slim AS build
WORKDIR /src
COPY scripts/deps.sh scripts/
RUN scripts/deps.sh build
COPY . .
RUN scripts/build.sh release -DEMBARGO_TESTS=OFF && strip build/embargo

FROM debian:12-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends libuv1 libc-ares2 libssl3 libyaml-0-2 libjansson4 zlib1g libidn2-0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin embargo
COPY --from=build /src/build/embargo /usr/local/bin/embargo
COPY config/default.yaml /etc/embargo/embargo.yaml.example
USER embargo
EXPOSE 3128
# The built-in configuration listens on 0.0.0.0:3128 and serves loopback,
# RFC 1918 and ULA clients; mount a file and pass --config to change it.
ENTRYPOINT ["/usr/local/bin/embargo"]
CMD ["run"]
