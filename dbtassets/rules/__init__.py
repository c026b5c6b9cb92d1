"""The pure decisions: staleness, checks, full refreshes, freshness policies, savings."""
