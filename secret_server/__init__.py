"""The secret server: KEK-B, wrapping and grant-checked unwrapping of share_b. No per-key secrets."""
