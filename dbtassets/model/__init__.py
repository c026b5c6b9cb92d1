"""What dbt produced and the user declared.

The manifest reader (with its code versions, the vars and env vars they include, ephemeral walk,
compact rows and on-disk cache), the asset graph, the dbt project, the record of what its last parse
saw, targets, selection (the selector parser and its evaluation), source settings, the declared
freshness policies and the loaded snapshot.
"""
