//! Placeholder: the scripted mock provider lands with the mock-server work.
