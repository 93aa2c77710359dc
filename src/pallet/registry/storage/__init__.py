"""Where the registry keeps things: blob bytes (a BlobStore) and metadata (a MetadataStore).

The two are separate interfaces so that an S3-compatible blob store and a PostgreSQL
metadata store can replace the filesystem and SQLite ones for several stateless replicas.
"""
