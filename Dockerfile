# caje on Fly.io: build the binary in a Rust image, then run it under LiteFS in
# a slim Debian image. LiteFS is the entrypoint; once it has joined the cluster
# it starts caje as set in litefs.yml (exec section).
#
# Volume layout (same in fly.toml, litefs.yml and deploy/caje.toml):
#   /data          the one Fly volume (caje_data)
#   /data/litefs   LiteFS's data dir: the real database and its LTX files
#   /data/cache    caje's cached response bodies
#   /litefs        LiteFS's FUSE mount; caje opens /litefs/manifest.db here

# ---------------------------------------------------------------- build stage
# Debian bookworm, the same release as the runtime image below, so the binary
# links against the glibc it will run with. The image ships gcc, which is all
# the bundled SQLite (libsqlite3-sys "bundled") and blake3's C code need.
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: with only the manifest and lockfile
# copied, this layer is rebuilt when Cargo.toml or Cargo.lock change, not on
# every source edit. Stub lib/bin targets let cargo build the dependency graph.
# (If Cargo.toml ever declares explicit [[bench]], [[test]] or [[example]]
# targets, add stubs for their files here too, or this step fails.)
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The real crate. migrations/ must be in the context: embed_migrations! reads
# it at compile time. --locked fails the build instead of silently updating
# Cargo.lock, so the image holds exactly the dependency versions in the repo.
COPY . .
# COPY keeps the files' original mtimes, which can be older than the stub
# build above; cargo would then think the stub caje is up to date and ship an
# empty binary. Touching the crate roots and dropping caje's own fingerprints
# forces caje itself (not its dependencies) to be rebuilt.
RUN touch src/main.rs src/lib.rs \
    && rm -rf target/release/.fingerprint/caje-* \
    && cargo build --release --locked \
    && install -m 0755 target/release/caje /usr/local/bin/caje

# -------------------------------------------------------------- runtime stage
FROM debian:bookworm-slim

# ca-certificates: LiteFS talks to Fly's Consul (FLY_CONSUL_URL) over HTTPS.
# fuse3: LiteFS mounts its FUSE file system with fusermount3.
# sqlite3: to inspect /litefs/manifest.db over `fly ssh console`.
RUN apt-get update -y \
    && apt-get install -y --no-install-recommends ca-certificates fuse3 sqlite3 \
    && rm -rf /var/lib/apt/lists/*

# The LiteFS binary, copied from the official image (0.5.x, whose config
# format litefs.yml uses).
COPY --from=flyio/litefs:0.5 /usr/local/bin/litefs /usr/local/bin/litefs

COPY --from=build /usr/local/bin/caje /usr/local/bin/caje

# `litefs mount` reads /etc/litefs.yml by default.
COPY litefs.yml /etc/litefs.yml
# caje's production config; the exec line in litefs.yml points at it.
COPY deploy/caje.toml /etc/caje/caje.toml

# /litefs is the FUSE mount point. /data is where Fly mounts the volume (the
# directory is there anyway if the app is ever run without one).
# check-config fails the build on an invalid config (it exits 2 and prints
# file, line and key), so a bad config is caught here, not by a crash loop
# after deploy. CAJE_* overrides set with `fly secrets` are only applied at
# run time.
RUN mkdir -p /litefs /data \
    && caje check-config /etc/caje/caje.toml

# caje's listen port (deploy/caje.toml) and fly.toml's internal_port.
# LiteFS's own API (20202) is deliberately not exposed: only the other
# machines reach it, over Fly's private network.
EXPOSE 8080

# No USER line: LiteFS runs as root to mount FUSE (Fly's LiteFS docs advise
# running it as root), and caje runs as its child process.
ENTRYPOINT ["litefs", "mount"]
