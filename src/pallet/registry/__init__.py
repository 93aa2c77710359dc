"""The registry server: an OCI Distribution Spec v1.1 registry (Docker Registry API V2).

Entry points: ``config.load_config`` / ``RegistryConfig``; ``server.RegistryServer``
(async), ``server.serve`` (blocking, for the CLI) and ``server.ThreadedRegistry`` (a
server on a background thread, for tests and benchmarks); ``gc.run_gc_offline`` and
``retention.run_retention_offline`` for maintenance from another process.

Map: ``app`` dispatches ``/v2/`` requests (``routing`` parses paths, ``names`` validates
names and references) to ``api_blobs``, ``api_manifests`` and ``api_discovery``;
``uploads`` streams blob uploads to disk; ``storage`` holds the blob store and the
metadata store interfaces with their filesystem and SQLite implementations; ``auth``
authenticates (htpasswd, ES256 tokens) and authorizes (ACLs); ``gc``, ``retention``,
``schedule``, ``audit``, ``metrics``, ``notify`` and ``accesslog`` are the operations side.
"""
