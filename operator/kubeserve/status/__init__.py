"""Status from observed state: conditions, revisions, traffic and URLs, written only when they change."""
