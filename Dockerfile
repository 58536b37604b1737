# snapswarm: one image for every command (`node`, `push`, `read`, `inspect`, `pause`, ...).
#   docker build -t snapswarm .
#   docker run --rm snapswarm --help
# Node 24 runs the TypeScript sources as they are (type stripping): there is no build step.
#
# Node itself is a devDependency: package.json pins it through npm's `node` package, and that pinned
# binary is what the tests ran on. `--omit=dev` drops it, so the image would silently run
# whatever Node the base image carries. Installing the dev dependencies is not the answer either (the
# `node` package downloads a second Node binary at install time, next to TypeScript and Biome, none of
# which runs in production). So the base image is pinned to the same version, and the build fails
# when the two disagree: bump NODE_VERSION together with the devDependency.
ARG NODE_VERSION=24.21.0
FROM node:${NODE_VERSION}-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

COPY package.json package-lock.json ./
# --ignore-scripts: the only production install script is zstd-napi's (a prebuilt download or a
# node-gyp build, which the slim image cannot do), and nothing loads zstd-napi at run time
# (src/format/zstd.ts uses node:zlib). lz4-napi's binary comes as a platform package, no script.
RUN node -e " \
      const want = require('./package-lock.json').packages['node_modules/node'].version; \
      if (process.versions.node !== want) { \
        console.error('base image runs Node ' + process.versions.node + ', package-lock.json pins ' + want + ': set NODE_VERSION=' + want); \
        process.exit(1); \
      }" \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

COPY bin ./bin
COPY protocols ./protocols
COPY src ./src

# /data holds a node's identity key (peer.key: its peer id), cache and pending builds. Created here
# owned by `node`, so a fresh named volume mounted on it is writable by the unprivileged user.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# libp2p (TCP) and the HTTP API, when started with --listen /ip4/0.0.0.0/tcp/4001 --api 0.0.0.0:8080.
# An API on a non-loopback address needs a bearer token: add --api-token-file FILE (a mounted secret;
# see docker-compose.yml), or the node refuses to start.
EXPOSE 4001 8080

ENTRYPOINT ["node", "src/cli/main.ts"]
CMD ["--help"]
