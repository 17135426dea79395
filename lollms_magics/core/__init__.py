"""The domain core: the Session, its conversation, keys, prompt filling and the automatic choice."""
