"""What dbt produced and the user declared.

The manifest reader (with its code versions, ephemeral walk, compact rows and on-disk cache), the
asset graph, the dbt project, targets, selection (the selector parser and its evaluation), source
settings, the declared freshness policies and the loaded snapshot.
"""
