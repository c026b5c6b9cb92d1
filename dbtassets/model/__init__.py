"""What dbt produced and the user declared.

The manifest reader, the asset graph, the dbt project, targets, selection, source settings and
the loaded snapshot.
"""
