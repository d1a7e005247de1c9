//! A fake Pipefy (placeholder, being written).
