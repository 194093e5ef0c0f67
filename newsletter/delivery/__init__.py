"""Getting issues to inboxes: the audience snapshot, batches, relays and outcomes."""
