# Wharf in a container: built with the Rust toolchain, run from a minimal image (glibc and
# libgcc only: the binary links nothing else) as a non-root user.
#   docker build -t wharf .
#   docker run -p 8080:8080 -v wharf-data:/var/lib/wharf wharf
# The data directory (/var/lib/wharf) holds the SQLite database, the master key and the first
# start's credentials: keep it on a volume. With PostgreSQL, set WHARF_DATABASE_URL (and
# WHARF_MASTER_KEY, shared by every node); see deploy/compose.yaml.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p wharf --bin wharf \
    && install -D -m 0755 target/release/wharf /out/wharf \
    && install -d -m 0700 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/wharf /usr/local/bin/wharf
COPY --from=build --chown=65532:65532 /out/data /var/lib/wharf
ENV WHARF_LISTEN=0.0.0.0:8080 \
    WHARF_DATA_DIR=/var/lib/wharf \
    WHARF_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
VOLUME ["/var/lib/wharf"]
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/wharf"]
CMD ["serve"]
