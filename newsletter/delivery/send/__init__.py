"""The send itself: the audience snapshot, claims, the batch sender and its outcomes."""
