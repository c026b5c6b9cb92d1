"""SQL understood with sqlglot: fingerprints, column lineage, code versions."""
